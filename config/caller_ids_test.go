package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/config"
)

// TestCallerIDsNormalized: a pool is stored with its numbers in E.164 and
// its limits as given; a strategy and rotate_on_retry round-trip.
func TestCallerIDsNormalized(t *testing.T) {
	t.Parallel()
	raw := `{"provider": "va", "base_url": "https://va.example", "sip_id": "1", "caller_ids": [
		{"number": "+1 (415) 555-0100", "sip_id": "12", "concurrency_limit": 2, "per_second": 1, "max_per_hour": 60, "max_per_day": 300},
		{"number": "+44 20 7946 0000", "agent_phone_number_id": "phnum_1"}],
		"caller_id_strategy": "least_used", "rotate_on_retry": true}`
	out, err := config.Normalize(config.KeyVoice, json.RawMessage(raw))
	if err != nil {
		t.Fatal(err)
	}
	var v config.Voice
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	want := []config.CallerID{
		{Number: "+14155550100", SipID: "12", ConcurrencyLimit: 2, PerSecond: 1, MaxPerHour: 60, MaxPerDay: 300},
		{Number: "+442079460000", AgentPhoneNumberID: "phnum_1"},
	}
	if fmt.Sprint(v.CallerIDs) != fmt.Sprint(want) || v.CallerIDStrategy != config.CallerLeastUsed || !v.RotateOnRetry {
		t.Fatalf("normalized voice = %s", out)
	}
	// Without a pool the voice value is as it was: no new fields shown.
	plain, err := config.Normalize(config.KeyVoice, json.RawMessage(`{"provider": "va"}`))
	if err != nil || strings.Contains(string(plain), "caller") {
		t.Fatalf("voice without a pool = %s, %v", plain, err)
	}
	if got := config.Decode(map[string]json.RawMessage{"voice": out}).Voice.CallerStrategy(); got != config.CallerLeastUsed {
		t.Fatalf("decoded strategy %q", got)
	}
	if got := (config.Voice{}).CallerStrategy(); got != config.CallerLocal {
		t.Fatalf("default strategy %q, want local", got)
	}
}

// TestCallerIDsInvalid: each bad entry is refused naming its field by its
// path in the voice value.
func TestCallerIDsInvalid(t *testing.T) {
	t.Parallel()
	pool := func(entries ...string) string {
		return `{"provider": "va", "caller_ids": [` + strings.Join(entries, ",") + `]}`
	}
	ok := `{"number": "+14155550100"}`
	many := make([]string, config.CallerIDsMax+1)
	for i := range many {
		many[i] = fmt.Sprintf(`{"number": "+1415555%04d"}`, i)
	}
	for _, tt := range []struct {
		name, raw, field string
	}{
		{"not a number", pool(ok, `{"number": "call me"}`), "caller_ids[1].number"},
		{"no country code", pool(`{"number": "4155550101"}`), "caller_ids[0].number"},
		{"missing number", pool(ok, ok, ok, `{"sip_id": "3"}`), "caller_ids[1].number"},
		{"duplicate after normalizing", pool(ok, `{"number": "+1 415 555 0100"}`), "caller_ids[1].number"},
		{"concurrency zero is unset, negative is not", pool(`{"number": "+14155550100", "concurrency_limit": -1}`), "caller_ids[0].concurrency_limit"},
		{"concurrency too high", pool(`{"number": "+14155550100", "concurrency_limit": 1001}`), "caller_ids[0].concurrency_limit"},
		{"per_second too slow", pool(`{"number": "+14155550100", "per_second": 0.001}`), "caller_ids[0].per_second"},
		{"per_second too fast", pool(`{"number": "+14155550100", "per_second": 1001}`), "caller_ids[0].per_second"},
		{"hourly cap negative", pool(`{"number": "+14155550100", "max_per_hour": -5}`), "caller_ids[0].max_per_hour"},
		{"daily cap too high", pool(`{"number": "+14155550100", "max_per_day": 1000001}`), "caller_ids[0].max_per_day"},
		{"sip_id with a slash", pool(`{"number": "+14155550100", "sip_id": "../x"}`), "caller_ids[0].sip_id"},
		{"unknown field in an entry", pool(ok, `{"number": "+14155550101", "weight": 3}`), "caller_ids[1].weight"},
		{"too many numbers", pool(many...), "caller_ids"},
		{"unknown strategy", `{"provider": "va", "caller_id_strategy": "random"}`, "caller_id_strategy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Normalize(config.KeyVoice, json.RawMessage(tt.raw))
			var fe *config.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Message == "" {
				t.Fatalf("Normalize = %s, %v; want a field error on %s", got, err, tt.field)
			}
		})
	}
}

// TestCallerIDsClampedWhenStored: a stored pool that predates a bound is
// read within it rather than refused.
func TestCallerIDsClampedWhenStored(t *testing.T) {
	t.Parallel()
	v := config.Decode(map[string]json.RawMessage{"voice": json.RawMessage(`{"provider": "va", "caller_ids": [
		{"number": "bad"}, {"number": "+14155550100", "concurrency_limit": 5000, "per_second": -1, "max_per_hour": -2}],
		"caller_id_strategy": "random"}`)}).Voice
	want := []config.CallerID{{Number: "+14155550100", ConcurrencyLimit: config.CallerConcurrencyMax}}
	if fmt.Sprint(v.CallerIDs) != fmt.Sprint(want) || v.CallerStrategy() != config.CallerLocal {
		t.Fatalf("decoded pool %+v, strategy %q", v.CallerIDs, v.CallerStrategy())
	}
}

func TestCallerIDPerSecondWindow(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		perSecond float64
		window    float64
		dials     int
	}{{0, 0, 0}, {0.5, 2, 1}, {1, 1, 1}, {2.5, 1, 2}} {
		if w, n := (config.CallerID{PerSecond: tt.perSecond}).PerSecondWindow(); w != tt.window || n != tt.dials {
			t.Errorf("per_second %g: %g s, %d dials; want %g s, %d", tt.perSecond, w, n, tt.window, tt.dials)
		}
	}
}
