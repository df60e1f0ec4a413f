package phone

import (
	"errors"
	"slices"
	"testing"
)

func TestRegion(t *testing.T) {
	for locale, want := range map[string]string{"uk-UA": "UA", "en_us": "US", "ja-JP": "JP", "uk": "", "": "", "zh-Hant-TW": "TW"} {
		if got := Region(locale); got != want {
			t.Errorf("Region(%q) = %q, want %q", locale, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ raw, region, want string }{
		{"+380991234567", "UA", "+380991234567"},
		{"+38 (099) 123-45-67", "UA", "+380991234567"},
		{"0991234567", "UA", "+380991234567"},
		{"380991234567", "UA", "+380991234567"},
		{"00380991234567", "UA", "+380991234567"},
		{"(212) 555-0123", "US", "+12125550123"},
		{"+81 3-1234-5678", "", "+81312345678"},
		{"0044 20 7946 0958", "UA", "+442079460958"},
	} {
		got, err := Normalize(tc.raw, tc.region)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", tc.raw, tc.region, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ raw, region string }{
		{"", "UA"}, {"abc", "UA"}, {"+1234", "UA"}, {"0991234567", ""}, {"+3809912345678901", "UA"}, {"+1 234 567 890", "UA"},
	} {
		if got, err := Normalize(tc.raw, tc.region); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalize(%q, %q) = %q, %v; want ErrInvalid", tc.raw, tc.region, got, err)
		}
	}
}

func TestTimezones(t *testing.T) {
	for number, want := range map[string][]string{
		"+380991234567": {"Europe/Kyiv"},
		"+12125550123":  {"America/New_York"},
		"+81312345678":  {"Asia/Tokyo"},
		"+61891234567":  {"Australia/Adelaide", "Australia/Perth"},
		"not a number":  nil,
	} {
		if got := Timezones(number); !slices.Equal(got, want) {
			t.Errorf("Timezones(%q) = %v, want %v", number, got, want)
		}
	}
}
