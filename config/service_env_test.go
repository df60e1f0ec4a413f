package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
)

// TestUnverifiedBodyBytesFromEnv: the budget is whole bytes; a value with a
// unit or a sign is refused by name, never read as its leading digits.
func TestUnverifiedBodyBytesFromEnv(t *testing.T) {
	for raw, want := range map[string]int64{"67108864": 67108864, "10MB": -1, "-5": -1, "0": -1, "1e6": -1} {
		t.Setenv("CALLQUEUE_UNVERIFIED_BODY_BYTES", raw)
		if got := config.FromEnv().UnverifiedBodyBytes; got != want {
			t.Errorf("CALLQUEUE_UNVERIFIED_BODY_BYTES=%q: %d, want %d", raw, got, want)
		}
	}
}

// TestCallerCacheEntriesFromEnv: unset takes the default (zero here), "0"
// keeps no copy (negative), a number is the cap.
func TestCallerCacheEntriesFromEnv(t *testing.T) {
	for raw, want := range map[string]int{"": 0, "0": -1, "5000": 5000} {
		t.Setenv("CALLQUEUE_CALLER_CACHE_ENTRIES", raw)
		if got := config.FromEnv().CallerCacheEntries; got != want {
			t.Errorf("CALLQUEUE_CALLER_CACHE_ENTRIES=%q: %d, want %d", raw, got, want)
		}
	}
}

// TestDatabaseBoundsFromEnv: each bound is a Go duration within its range;
// anything else is refused naming the variable, and unset takes the
// store's default (zero here).
func TestDatabaseBoundsFromEnv(t *testing.T) {
	valid := config.Service{DatabaseURL: "postgres://127.0.0.1/x", SecretKey: make([]byte, 32), Timezone: config.TimezoneDefault,
		NATSSync: config.NATSSyncDefault, NATSReplicas: 1}
	if err := valid.Validate(); err != nil {
		t.Fatalf("the valid base: %v", err)
	}
	for _, tc := range []struct {
		name, raw string
		ok        bool
		get       func(config.DatabaseBounds) time.Duration
		want      time.Duration
	}{
		{"CALLQUEUE_DB_CONNECT_TIMEOUT", "5s", true, func(b config.DatabaseBounds) time.Duration { return b.ConnectTimeout }, 5 * time.Second},
		{"CALLQUEUE_DB_CONNECT_TIMEOUT", "0s", false, nil, 0},
		{"CALLQUEUE_DB_CONNECT_TIMEOUT", "5", false, nil, 0},
		{"CALLQUEUE_DB_STATEMENT_TIMEOUT", "30s", true, func(b config.DatabaseBounds) time.Duration { return b.StatementTimeout }, 30 * time.Second},
		{"CALLQUEUE_DB_STATEMENT_TIMEOUT", "2h", false, nil, 0},
		{"CALLQUEUE_DB_STATEMENT_TIMEOUT", "-1s", false, nil, 0},
		{"CALLQUEUE_DB_TCP_USER_TIMEOUT", "15s", true, func(b config.DatabaseBounds) time.Duration { return b.TCPUserTimeout }, 15 * time.Second},
		{"CALLQUEUE_DB_TCP_USER_TIMEOUT", "500ms", false, nil, 0},
	} {
		t.Run(tc.name+"="+tc.raw, func(t *testing.T) {
			t.Setenv(tc.name, tc.raw)
			s := valid
			s.DB = config.FromEnv().DB
			err := s.Validate()
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), tc.name) {
					t.Fatalf("Validate() = %v, want an error naming %s", err, tc.name)
				}
				return
			}
			if err != nil || tc.get(s.DB) != tc.want {
				t.Fatalf("Validate() = %v with %v, want %v", err, s.DB, tc.want)
			}
		})
	}
}

// TestTraceURLTemplate: the console's trace link is checked at startup; a
// template the console could not turn into an http(s) link for the id
// stops serve with the variable named.
func TestTraceURLTemplate(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1/x")
	t.Setenv("CALLQUEUE_SECRET_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for raw, ok := range map[string]bool{
		"": true,
		"https://grafana.local/explore?traceId={traceId}": true,
		"http://127.0.0.1:16686/trace/{traceId}":          true,
		"https://grafana.local/explore":                   false, // no place for the id
		"javascript:alert(1)//{traceId}":                  false,
		"/explore?traceId={traceId}":                      false, // relative
		"https://grafana.local/%zz/{traceId}":             false,
		"ftp://grafana.local/{traceId}":                   false,
		"  https://tempo.local/trace/{traceId}  ":         true, // surrounding spaces are not part of it
	} {
		t.Setenv("CALLQUEUE_TRACE_URL_TEMPLATE", raw)
		err := config.FromEnv().Validate()
		if (err == nil) != ok {
			t.Errorf("CALLQUEUE_TRACE_URL_TEMPLATE=%q: Validate() = %v, want ok %v", raw, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "CALLQUEUE_TRACE_URL_TEMPLATE") {
			t.Errorf("the error does not name the variable: %v", err)
		}
	}
}
