package store

import (
	"context"
	"crypto/rand"
	"regexp"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"golang.org/x/text/unicode/norm"
)

// Slugs are one namespace across the service: the first path segment of
// every webhook. Three rules keep one tenant from taking another's:
//   - a slug derived from a name that is taken (or reserved) gets a random
//     suffix, not the next number, so nobody can predict and claim it first;
//   - a slug an integration gave up (deleted, or changed) stays its owner's:
//     another owner cannot take it, since the callers configured with it
//     (the dialler, the CRM) would then reach the newcomer's integration;
//   - the service's own first path segments are reserved.

// SlugPattern is the shape of an integration's URL key.
var SlugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// reservedSlugs are first path segments the service serves, or may.
var reservedSlugs = map[string]bool{
	"admin": true, "api": true, "assets": true, "docs": true, "health": true, "healthz": true, "login": true,
	"logout": true, "metrics": true, "openapi": true, "readyz": true, "static": true, "status": true,
	"webhook": true, "webhooks": true, "well-known": true, "www": true,
}

// ReservedSlug reports whether slug would shadow one of the service's own paths.
func ReservedSlug(slug string) bool { return reservedSlugs[slug] }

// transliteration spells Cyrillic letters (Russian, Ukrainian,
// Belarusian) and Latin letters that do not decompose in ASCII.
var transliteration = map[rune]string{
	'а': "a", 'б': "b", 'в': "v", 'г': "g", 'д': "d", 'е': "e", 'ё': "e", 'ж': "zh", 'з': "z", 'и': "i",
	'й': "y", 'к': "k", 'л': "l", 'м': "m", 'н': "n", 'о': "o", 'п': "p", 'р': "r", 'с': "s", 'т': "t",
	'у': "u", 'ф': "f", 'х': "kh", 'ц': "ts", 'ч': "ch", 'ш': "sh", 'щ': "shch", 'ъ': "", 'ы': "y", 'ь': "",
	'э': "e", 'ю': "yu", 'я': "ya", 'є': "ye", 'і': "i", 'ї': "yi", 'ґ': "g", 'ў': "u",
	'ß': "ss", 'æ': "ae", 'œ': "oe", 'ø': "o", 'ł': "l", 'đ': "d", 'ð': "d", 'þ': "th", 'ı': "i",
}

// slugBaseMax leaves room for a suffix within the pattern's 63 characters.
const slugBaseMax = 56

// Slugify derives a URL key from a name: transliterated, accents dropped,
// lowercase letters and digits joined by dashes. It is "" when nothing of
// the name can be spelled so; CreateIntegration then picks a random one.
func Slugify(name string) string {
	var b strings.Builder
	// Letters are looked up whole (й, ё, ї are letters of their own, not
	// и, е, і with a mark); the rest is decomposed and loses its accents.
	for _, r := range norm.NFC.String(strings.ToLower(name)) {
		if t, ok := transliteration[r]; ok {
			b.WriteString(t)
			continue
		}
		for _, d := range norm.NFKD.String(string(r)) {
			if !unicode.Is(unicode.Mn, d) {
				b.WriteRune(d)
			}
		}
	}
	s := strings.Trim(nonSlug.ReplaceAllString(b.String(), "-"), "-")
	if len(s) > slugBaseMax {
		s = strings.TrimRight(s[:slugBaseMax], "-")
	}
	return s
}

// slugAlphabet spells random suffixes.
const slugAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// withRandomSuffix is base (or "integration" when empty) with six random
// characters: 36^6, about two billion, so a clash is rare and a guess futile.
func withRandomSuffix(base string) string {
	if base == "" {
		base = "integration"
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix) // never fails (crypto/rand)
	for i, c := range suffix {
		suffix[i] = slugAlphabet[int(c)%len(slugAlphabet)]
	}
	return base + "-" + string(suffix)
}

// slugRetiredByOther reports whether slug was given up by another owner's
// integration: it stays theirs.
func slugRetiredByOther(ctx context.Context, tx pgx.Tx, slug, owner string) (bool, error) {
	var retired bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM retired_slugs WHERE slug = $1 AND owner_id <> $2)`, slug, owner).Scan(&retired)
	return retired, err
}

// retireSlug keeps a slug an integration gives up for its owner.
func retireSlug(ctx context.Context, tx pgx.Tx, slug, owner string) error {
	_, err := tx.Exec(ctx, `INSERT INTO retired_slugs (slug, owner_id) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING`, slug, owner)
	return err
}
