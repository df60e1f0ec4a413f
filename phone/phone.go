// Package phone normalises phone numbers to E.164 and tells which time
// zones a number implies. Numbers are compared in E.164 everywhere (calls,
// suppressions, campaign duplicates), so every way a number enters the
// service goes through Normalize. It is a thin layer over
// github.com/nyaruka/phonenumbers, a maintained port of libphonenumber.
package phone

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// ErrInvalid is a number that cannot be read as a dialable number.
var ErrInvalid = errors.New("not a phone number that can be written in E.164 form")

// Region is the default region of a locale such as "uk-UA" ("UA"): the
// country a number without its country code is read in. A locale without a
// region gives "", and then only numbers with a country code are accepted.
func Region(locale string) string {
	i := strings.LastIndexAny(locale, "-_")
	if i < 0 {
		return ""
	}
	region := strings.ToUpper(locale[i+1:])
	if len(region) != 2 {
		return ""
	}
	return region
}

// Normalize returns raw in E.164 form ("+380991234567"), reading a number
// without a country code in region. Numbers libphonenumber deems impossible
// for their country (wrong length) are refused; numbers of ranges not yet
// allocated are not, so a new operator's numbers are never turned away.
func Normalize(raw, region string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", ErrInvalid
	}
	if e164, ok := normalizeE164(raw); ok {
		return e164, nil
	}
	return parse(raw, region)
}

// parse is Normalize through the library's full parser.
func parse(raw, region string) (string, error) {
	n, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsPossibleNumber(n) {
		return "", ErrInvalid
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// Timezones lists the IANA zones an E.164 number's country and area code
// imply, or none when the library knows of none.
func Timezones(e164 string) []string {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return nil
	}
	zones, err := phonenumbers.GetTimezonesForNumber(n)
	if err != nil || len(zones) == 1 && zones[0] == phonenumbers.UNKNOWN_TIMEZONE {
		return nil
	}
	return zones
}

// normalizeE164 is the fast path of Normalize for what most uploads hold: a
// number already in E.164 ("+" and digits). The library's parser spends
// most of its time in general-purpose regular expressions (extensions,
// punctuation, national prefixes); for such a number the answer needs none
// of them. ok is false whenever the parser might read the number
// differently (a national prefix after the country code, a leading zero,
// an unknown country code), and Normalize then asks the parser. The result
// equals the parser's for every input (TestNormalizeE164MatchesParser,
// FuzzNormalize).
func normalizeE164(raw string) (string, bool) {
	const minDigits, maxDigits = 7, 15
	digits := raw[min(1, len(raw)):]
	if raw[0] != '+' || len(digits) < minDigits || len(digits) > maxDigits || digits[0] == '0' {
		return "", false
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	prefixes := nationalPrefixes()
	var cc int32
	for i := 1; i <= 3; i++ {
		cc = cc*10 + int32(digits[i-1]-'0')
		if len(phonenumbers.GetRegionCodesForCountryCode(int(cc))) == 0 {
			continue
		}
		// The parser takes the first known country code, as here.
		prefix, ok := prefixes[int(cc)]
		nsn := digits[i:]
		if !ok || nsn[0] == '0' || !prefix.absentFrom(nsn) {
			return "", false
		}
		national, err := strconv.ParseUint(nsn, 10, 64)
		if err != nil {
			return "", false
		}
		n := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(cc), NationalNumber: proto.Uint64(national)}
		if !phonenumbers.IsPossibleNumber(n) {
			return "", false
		}
		return raw, true
	}
	return "", false
}

// nationalPrefix is what the parser may strip after a country code: a
// pattern, which the fast path handles only when it is plain runs of
// digits ("0", "0|180020").
type nationalPrefix struct {
	pattern      bool     // the country has a national prefix for parsing
	alternatives []string // its plain-digit alternatives; nil if it is not that simple
}

// absentFrom tells whether the prefix certainly does not start nsn, so the
// parser strips nothing.
func (p nationalPrefix) absentFrom(nsn string) bool {
	if !p.pattern {
		return true
	}
	if p.alternatives == nil {
		return false
	}
	for _, a := range p.alternatives {
		if strings.HasPrefix(nsn, a) {
			return false
		}
	}
	return true
}

// nationalPrefixes maps each country calling code to the national prefix
// of its main region, as the parser uses it.
var nationalPrefixes = sync.OnceValue(func() map[int]nationalPrefix {
	out := map[int]nationalPrefix{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return out // the fast path is off; the parser answers
	}
	for _, m := range coll.GetMetadata() {
		cc := int(m.GetCountryCode())
		main := phonenumbers.GetRegionCodeForCountryCode(cc)
		if m.GetId() != main {
			continue
		}
		p := m.GetNationalPrefixForParsing()
		np := nationalPrefix{pattern: p != ""}
		if np.pattern && strings.Trim(p, "0123456789|") == "" {
			np.alternatives = strings.Split(p, "|")
			if slices.Contains(np.alternatives, "") {
				np.alternatives = nil // an empty alternative matches anything
			}
		}
		out[cc] = np
	}
	return out
})

// Locality is where a number belongs: its country (ISO region, "GB") and
// its geographic area code within it ("415" of +1 415…; "" for mobile and
// other non-geographic numbers). Caller numbers are matched to recipients
// by it (contract §9, the "local" strategy).
type Locality struct {
	Country  string
	AreaCode string
}

// LocalityOf tells an E.164 number's locality; the zero Locality when it
// cannot be read. A number libphonenumber deems invalid keeps the main
// country of its calling code and has no area code.
func LocalityOf(e164 string) Locality {
	n, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return Locality{}
	}
	region := phonenumbers.GetRegionCodeForNumber(n)
	if region == "" || region == phonenumbers.UNKNOWN_REGION {
		region = phonenumbers.GetRegionCodeForCountryCode(int(n.GetCountryCode()))
		if region == phonenumbers.UNKNOWN_REGION {
			region = ""
		}
		return Locality{Country: region}
	}
	l := Locality{Country: region}
	if size := phonenumbers.GetLengthOfGeographicalAreaCode(n); size > 0 {
		if nsn := phonenumbers.GetNationalSignificantNumber(n); size <= len(nsn) {
			l.AreaCode = nsn[:size]
		}
	}
	return l
}
