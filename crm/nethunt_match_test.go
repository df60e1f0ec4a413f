package crm

import (
	"testing"

	"github.com/callqueue/callqueue/phone"
)

// TestPhoneMatches: a record is the recipient's only when its phone digits
// are the recipient's number as people type it; a foreign or longer number
// that ends in the same digits is someone else.
func TestPhoneMatches(t *testing.T) {
	forms, err := phone.FormsOf("+380991234567")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		value any
		want  bool
	}{
		{"+380 99 123 45 67", true},
		{"099 123 4567", true},
		{"(99) 123-45-67", true},
		{"00380991234567", true},
		{[]any{"+44 20 7946 0000", "+380991234567"}, true},
		{"0501112233, 0991234567", true},
		{"+44 7991 234567", false}, // a UK number ending in the same nine digits
		{"+1 555 991 234 567", false},
		{"991234567 0", false},
		{"", false},
		{nil, false},
		{[]any{42}, false},
	}
	for _, c := range cases {
		if got := phoneMatches(c.value, forms); got != c.want {
			t.Errorf("phoneMatches(%#v) = %v, want %v", c.value, got, c.want)
		}
	}
}
