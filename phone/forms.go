package phone

import (
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Forms are the ways people commonly type one number into a CRM: E.164
// ("+380991234567"), the same without "+" ("380991234567"), the national
// form with its trunk prefix ("0991234567") and the national significant
// number alone ("991234567"). A CRM searched for a number stored as typed
// has to be asked for each.
type Forms struct {
	E164, International, National, NSN string
}

// FormsOf returns the typed forms of an E.164 number.
func FormsOf(e164 string) (Forms, error) {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil || !strings.HasPrefix(e164, "+") || !phonenumbers.IsPossibleNumber(n) {
		return Forms{}, ErrInvalid
	}
	return Forms{
		E164:          phonenumbers.Format(n, phonenumbers.E164),
		International: strings.TrimPrefix(phonenumbers.Format(n, phonenumbers.E164), "+"),
		National:      Digits(phonenumbers.Format(n, phonenumbers.NATIONAL)),
		NSN:           phonenumbers.GetNationalSignificantNumber(n),
	}, nil
}

// List is the distinct forms, most specific first.
func (f Forms) List() []string {
	var out []string
	for _, s := range []string{f.E164, f.International, f.National, f.NSN} {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Digits keeps only the ASCII digits of s ("+380 (99) 123-45-67" →
// "380991234567").
func Digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
