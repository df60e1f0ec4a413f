package phone

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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

// TestNormalizeE164MatchesParser: for numbers of every country calling
// code, of every length, with and without the country's national prefix
// after the code, the fast path answers as the parser does or leaves the
// number to it.
func TestNormalizeE164MatchesParser(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for cc := 1; cc <= 999; cc++ {
		leads := []string{"", "0"}
		if np, ok := nationalPrefixes()[cc]; ok {
			leads = append(leads, np.alternatives...)
		}
		for n := 1; n <= 15; n++ {
			for _, lead := range leads {
				var b strings.Builder
				b.WriteString("+" + strconv.Itoa(cc) + lead)
				for b.Len() < 1+len(strconv.Itoa(cc))+n {
					b.WriteByte(byte('0' + rng.IntN(10)))
				}
				raw := b.String()
				got, ok := normalizeE164(raw)
				if !ok {
					continue
				}
				fast++
				for _, region := range []string{"", "UA", "US", "DE"} {
					if want, err := parse(raw, region); err != nil || want != got {
						t.Fatalf("normalizeE164(%q) = %q; the parser (region %q) gives %q, %v", raw, got, region, want, err)
					}
				}
			}
		}
	}
	if fast < 1000 {
		t.Fatalf("only %d numbers took the fast path", fast)
	}
	for _, raw := range []string{"+380991234567", "+12125550123", "+442079460958", "+4915123456789"} {
		if _, ok := normalizeE164(raw); !ok {
			t.Errorf("%s did not take the fast path", raw)
		}
	}
}

// FuzzNormalize: Normalize never panics, and its fast path agrees with the
// parser on every input.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+380991234567", "+38 (099) 123-45-67", "0991234567", "+1", "+", "+0", "+800 1234 5678", "+3900612345678"} {
		f.Add(s, "UA")
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		got, err := Normalize(raw, region)
		want, werr := parse(strings.TrimSpace(raw), region)
		if strings.TrimSpace(raw) == "" {
			want, werr = "", ErrInvalid
		}
		if got != want || (err == nil) != (werr == nil) {
			t.Fatalf("Normalize(%q, %q) = %q, %v; the parser gives %q, %v", raw, region, got, err, want, werr)
		}
	})
}

func TestLocalityOf(t *testing.T) {
	for _, tt := range []struct {
		number string
		want   Locality
	}{
		{"+14155550100", Locality{Country: "US", AreaCode: "415"}},
		{"+12125550100", Locality{Country: "US", AreaCode: "212"}},
		{"+16135550100", Locality{Country: "CA", AreaCode: "613"}},
		{"+442079460000", Locality{Country: "GB", AreaCode: "20"}},
		{"+380501234567", Locality{Country: "UA"}}, // mobile: no area code
		{"+447700900123", Locality{Country: "GB"}}, // invalid range: its calling code's country
		{"not a number", Locality{}},
	} {
		if got := LocalityOf(tt.number); got != tt.want {
			t.Errorf("LocalityOf(%q) = %+v, want %+v", tt.number, got, tt.want)
		}
	}
}
