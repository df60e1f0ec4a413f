package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/store"
)

func TestSlugify(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, want string }{
		{"Acme Sales!", "acme-sales"},
		{"Продажи Москва", "prodazhi-moskva"},
		{"Щедрый подъезд", "shchedryy-podezd"},
		{"Другий проєкт", "drugiy-proyekt"},
		{"Їжак і ґанок", "yizhak-i-ganok"},
		{"Café Müller", "cafe-muller"},
		{"Straße Łódź", "strasse-lodz"},
		{"ＡＢＣ１２３", "abc123"}, // full-width forms
		{"東京", ""},
		{"!!!", ""},
		{strings.Repeat("Длинное имя ", 10), "dlinnoe-imya-dlinnoe-imya-dlinnoe-imya-dlinnoe-imya-dlin"},
	}
	for _, tt := range tests {
		got := store.Slugify(tt.name)
		if got != tt.want {
			t.Errorf("Slugify(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if got != "" && !store.SlugPattern.MatchString(got) {
			t.Errorf("Slugify(%q) = %q does not match the slug pattern", tt.name, got)
		}
	}
}

// TestSlugsCannotBeSquatted: derived slugs that are taken, reserved or
// empty get a random suffix; a slug an integration gave up stays its
// owner's.
func TestSlugsCannotBeSquatted(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	suffixed := func(base string) *regexp.Regexp { return regexp.MustCompile(`^` + base + `-[a-z0-9]{6}$`) }

	first := createIntegration(t, s, "owner-a", "Продажи")
	if first.Slug != "prodazhi" {
		t.Fatalf("slug of Продажи = %q", first.Slug)
	}
	seen := map[string]bool{first.Slug: true}
	for _, owner := range []string{"owner-a", "owner-b", "owner-b"} {
		in := createIntegration(t, s, owner, "Продажи")
		if !suffixed("prodazhi").MatchString(in.Slug) || seen[in.Slug] {
			t.Errorf("a second Продажи got %q, want prodazhi and a new random suffix", in.Slug)
		}
		seen[in.Slug] = true
	}
	for name, base := range map[string]string{"東京": "integration", "API": "api", "Admin": "admin"} {
		if in := createIntegration(t, s, "owner-a", name); !suffixed(base).MatchString(in.Slug) {
			t.Errorf("slug of %q = %q, want %s and a random suffix", name, in.Slug, base)
		}
	}

	// Deleted: the slug stays owner-a's.
	must(t, s.DeleteIntegration(ctx, "owner-a", "owner-a", first.ID))
	if _, err := s.CreateIntegration(ctx, "owner-b", "owner-b", store.IntegrationFields{Name: ptr("Mine"), Slug: ptr("prodazhi")}); !isSlugConflict(err) {
		t.Fatalf("another owner took a deleted integration's slug: %v", err)
	}
	if in := createIntegration(t, s, "owner-b", "Prodazhi"); in.Slug == "prodazhi" {
		t.Fatal("a derived slug took a deleted integration's slug of another owner")
	}
	again, err := s.CreateIntegration(ctx, "owner-a", "owner-a", store.IntegrationFields{Name: ptr("Back"), Slug: ptr("prodazhi")})
	if err != nil || again.Slug != "prodazhi" {
		t.Fatalf("the owner could not take its own slug back: %q, %v", again.Slug, err)
	}

	// Changed: the old slug stays the owner's too.
	b := createIntegration(t, s, "owner-b", "Leads")
	if _, err := s.UpdateIntegration(ctx, "owner-b", "owner-b", b.ID, store.IntegrationFields{Slug: ptr("leads-2026")}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateIntegration(ctx, "owner-a", "owner-a", again.ID, store.IntegrationFields{Slug: ptr("leads")}, false); !isSlugConflict(err) {
		t.Fatalf("another owner moved onto a changed slug: %v", err)
	}
	if _, err := s.UpdateIntegration(ctx, "owner-b", "owner-b", b.ID, store.IntegrationFields{Slug: ptr("leads")}, false); err != nil {
		t.Fatalf("the owner could not move back to its old slug: %v", err)
	}
}

func isSlugConflict(err error) bool {
	var c *store.ConflictError
	return errors.As(err, &c) && c.Field == "slug"
}
