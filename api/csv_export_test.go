package api

import "testing"

func TestSpreadsheetCell(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"lead-1", "lead-1"},
		{`=HYPERLINK("http://127.0.0.1/x","y")`, `'=HYPERLINK("http://127.0.0.1/x","y")`},
		{"+1+1", "'+1+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tcmd", "'\tcmd"},
		{"\rcmd", "'\rcmd"},
		{"+380991234567", "+380991234567"},          // E.164: a phone number
		{"+380 99 123", "'+380 99 123"},             // not E.164
		{"+3809912345678901", "'+3809912345678901"}, // too long for E.164
	}
	for _, tt := range tests {
		if got := spreadsheetCell(tt.in); got != tt.want {
			t.Errorf("spreadsheetCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
