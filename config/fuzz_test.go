package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
)

// The config decoders read what tenants send: whatever the bytes, they
// must answer with a value or a *FieldError, never panic, and what they
// accept must read back the same and stay within the contract's bounds.

// fuzzKeys are the keys a fuzz input picks from: the known ones, the two
// read by their own packages, and a free-form one.
var fuzzKeys = append(append([]string{}, config.KnownKeys...), config.KeyPredial, config.KeyData, "analysis", "custom.key")

var configSeeds = []string{
	`{"concurrency_limit": 3, "min_call_duration_secs": 5, "max_attempts": 3, "retry_delays_secs": [300, 900, 3600]}`,
	`{"max_call_duration_secs": 1800, "calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": [1,2,3,4,5]}}`,
	`{"calling_window": {"timezone": "recipient", "start": "22:00", "end": "06:00", "days": [6, 7]}}`,
	`{"retry_policy": {"no_answer": {"max_attempts": 4, "delays_secs": [1800, 7200, 86400]}, "busy": {"delays_secs": [60]}}}`,
	`{"retry_delays_secs": [9223372036854775807]}`,
	`{"max_call_duration_secs": 4294967296}`,
	`{"provider": "va", "base_url": "https://va.example", "sip_id": "s", "assistant_id": "a"}`,
	`{"provider": "elevenlabs", "base_url": "https://user:pass@el.example/?token=x"}`,
	`{"kind": "webhook", "lookup_url": "https://crm.example/l?token=abc", "update_url": "https://crm.example/u"}`,
	`{"kind": "nethunt", "folder_id": "f"}`,
	`{"phone": "Phone", "name": "Name"}`,
	`{"timezone": "Europe/Kyiv", "locale": "uk-UA"}`,
	`{"url": "https://check.example/", "timeout_ms": 1500}`,
	`{"base_url": "https://api.openai.com/v1", "model": "m", "prompt": "p", "fields": ["a"]}`,
	`null`, `[]`, `{}`, `"x"`, `{"calling_window": {"start": "25:61"}}`, `{"retry_policy": {"no_answer": null}}`,
}

func FuzzNormalize(f *testing.F) {
	for i, seed := range configSeeds {
		f.Add(uint8(i), []byte(seed))
	}
	f.Fuzz(func(t *testing.T, k uint8, raw []byte) {
		key := fuzzKeys[int(k)%len(fuzzKeys)]
		out, err := config.Normalize(key, raw)
		_ = config.CheckURLs(key, raw, nil)
		if err != nil {
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Normalize(%s, %q) = %v: not a *FieldError", key, raw, err)
			}
			return
		}
		// Accepted values are stable: normalizing again changes nothing.
		again, err := config.Normalize(key, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("Normalize(%s) of its own output %s = %s, %v", key, out, again, err)
		}
		cfg := config.Decode(map[string]json.RawMessage{key: out})
		checkBounds(t, cfg.CallHandling)
	})
}

// FuzzDecode reads arbitrary stored values leniently (rows written before
// a bound existed, or by hand): no panic, and the result within bounds.
func FuzzDecode(f *testing.F) {
	for _, seed := range configSeeds {
		f.Add([]byte(seed), []byte(`{"kind": "none"}`))
	}
	f.Fuzz(func(t *testing.T, callHandling, other []byte) {
		stored := map[string]json.RawMessage{config.KeyCallHandling: callHandling}
		for _, key := range fuzzKeys[1:] {
			stored[key] = other
		}
		checkBounds(t, config.Decode(stored).CallHandling)
	})
}

// FuzzOverlay lays a campaign's overlay over the defaults, as the
// dispatcher does for each of its calls.
func FuzzOverlay(f *testing.F) {
	for _, seed := range configSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, overlay []byte) {
		base := config.Decode(nil).CallHandling
		c, err := base.Overlay(overlay)
		if err != nil {
			return
		}
		if config.ValidateCallHandling(c) == nil {
			checkBounds(t, c)
		}
	})
}

// checkBounds: delays are never negative nor beyond 30 days, and a calling
// window opens within a week.
func checkBounds(t *testing.T, c config.CallHandling) {
	t.Helper()
	const maxDelay = 30 * 24 * time.Hour
	for attempt := range 25 {
		if d := c.RetryDelay(attempt); d < 0 || d > maxDelay {
			t.Fatalf("RetryDelay(%d) = %v of %+v", attempt, d, c)
		}
		for _, outcome := range config.RetryOutcomes {
			if r := c.RetryPolicy.Rule(outcome); r != nil {
				if d := r.Delay(attempt); d < 0 || d > maxDelay {
					t.Fatalf("%s Delay(%d) = %v of %+v", outcome, attempt, d, r)
				}
			}
		}
	}
	if c.CallingWindow != nil && len(c.CallingWindow.Days) > 0 {
		now := time.Date(2026, 3, 29, 2, 30, 0, 0, time.UTC) // a DST change in Europe
		next := c.CallingWindow.NextOpen(now, time.UTC)
		if next.Before(now) || next.After(now.Add(8*24*time.Hour)) {
			t.Fatalf("NextOpen(%v) = %v for %+v", now, next, c.CallingWindow)
		}
	}
}
