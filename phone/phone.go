// Package phone normalises phone numbers to E.164 and tells which time
// zones a number implies. Numbers are compared in E.164 everywhere (calls,
// suppressions, campaign duplicates), so every way a number enters the
// service goes through Normalize. It is a thin layer over
// github.com/nyaruka/phonenumbers, a maintained port of libphonenumber.
package phone

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"
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
