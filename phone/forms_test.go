package phone

import (
	"errors"
	"slices"
	"testing"
)

func TestFormsOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e164 string
		want Forms
		list []string
	}{
		{"+380991234567", Forms{"+380991234567", "380991234567", "0991234567", "991234567"},
			[]string{"+380991234567", "380991234567", "0991234567", "991234567"}},
		// No trunk prefix: the national form is the national number.
		{"+12015550123", Forms{"+12015550123", "12015550123", "2015550123", "2015550123"},
			[]string{"+12015550123", "12015550123", "2015550123"}},
		// Italy keeps its leading zero in the national significant number.
		{"+390212345678", Forms{"+390212345678", "390212345678", "0212345678", "0212345678"},
			[]string{"+390212345678", "390212345678", "0212345678"}},
	}
	for _, tt := range tests {
		got, err := FormsOf(tt.e164)
		if err != nil || got != tt.want {
			t.Errorf("FormsOf(%q) = %+v, %v; want %+v", tt.e164, got, err, tt.want)
		}
		if l := got.List(); !slices.Equal(l, tt.list) {
			t.Errorf("FormsOf(%q).List() = %v, want %v", tt.e164, l, tt.list)
		}
	}
	for _, bad := range []string{"", "0991234567", "+", "call me", "+3801", "+380991234567890123"} {
		if _, err := FormsOf(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("FormsOf(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDigits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"+380 (99) 123-45-67": "380991234567", "": "", "тел. 099 123 4567": "0991234567"} {
		if got := Digits(in); got != want {
			t.Errorf("Digits(%q) = %q, want %q", in, got, want)
		}
	}
}
