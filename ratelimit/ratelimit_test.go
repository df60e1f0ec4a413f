package ratelimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/callqueue/callqueue/ratelimit"
)

// limited records what the Limits reported.
type limited struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *limited) record(kind ratelimit.Kind, per string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[string(kind)+"/"+per]++
}

func send(l *ratelimit.Limits, kind ratelimit.Kind, peer, path, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "http://calls.test"+path, nil)
	r.RemoteAddr = peer
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	if l.Allow(w, r, kind) {
		w.WriteHeader(http.StatusAccepted)
	}
	return w
}

func assertLimited(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || w.Header().Get("Retry-After") == "0" {
		t.Fatalf("%s: %d, Retry-After %q; want 429 with Retry-After", what, w.Code, w.Header().Get("Retry-After"))
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "rate_limited" || body.Error.Message == "" {
		t.Errorf("%s: body %s is not the contract's error shape (%v)", what, w.Body, err)
	}
}

func TestWebhookLimits(t *testing.T) {
	t.Parallel()
	rec := &limited{counts: map[string]int{}}
	l := ratelimit.New(ratelimit.Rules{
		WebhookIntegration: ratelimit.Rule{PerSecond: 0.001, Burst: 3},
		WebhookIP:          ratelimit.Rule{PerSecond: 0.001, Burst: 5},
	}, rec.record)
	acme, globex := [16]byte{1}, [16]byte{2}
	for i := range 3 {
		if w := charge(l, acme); w.Code != http.StatusAccepted {
			t.Fatalf("request %d of acme's burst: %d", i+1, w.Code)
		}
	}
	assertLimited(t, charge(l, acme), "acme past its burst")
	if w := charge(l, globex); w.Code != http.StatusAccepted {
		t.Errorf("another integration was limited by acme's burst: %d", w.Code)
	}
	// The per-address limit knows nothing of integrations: a request is
	// charged to its sender before it authenticates.
	for range 5 {
		send(l, ratelimit.KindWebhook, "198.51.100.1:1", "/acme/webhook/call-events", "")
	}
	assertLimited(t, send(l, ratelimit.KindWebhook, "198.51.100.1:1", "/hooli/health", ""), "an address past its burst")
	if w := send(l, ratelimit.KindWebhook, "198.51.100.3:1", "/hooli/health", ""); w.Code != http.StatusAccepted {
		t.Errorf("another address was limited: %d", w.Code)
	}
	if rec.counts["webhook/integration"] != 1 || rec.counts["webhook/ip"] != 1 {
		t.Errorf("limited counts %v, want one per integration and one per address", rec.counts)
	}
}

// charge charges one authenticated request to an integration's bucket.
func charge(l *ratelimit.Limits, integrationID [16]byte) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	if l.AllowIntegration(w, integrationID) {
		w.WriteHeader(http.StatusAccepted)
	}
	return w
}

// An IPv6 client is limited by its /64: a subscriber holds the whole block.
func TestIPv6ClientsAreLimitedBySlash64(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Rules{WebhookIP: ratelimit.Rule{PerSecond: 0.001, Burst: 2}}, nil)
	send(l, ratelimit.KindWebhook, "[2001:db8:1:2::1]:1", "/a/health", "")
	send(l, ratelimit.KindWebhook, "[2001:db8:1:2::2]:1", "/a/health", "")
	assertLimited(t, send(l, ratelimit.KindWebhook, "[2001:db8:1:2:ffff::3]:1", "/a/health", ""), "a third address of the same /64")
	if w := send(l, ratelimit.KindWebhook, "[2001:db8:1:3::1]:1", "/a/health", ""); w.Code != http.StatusAccepted {
		t.Errorf("another /64 was limited: %d", w.Code)
	}
}

func TestAPILimits(t *testing.T) {
	t.Parallel()
	rec := &limited{counts: map[string]int{}}
	l := ratelimit.New(ratelimit.Rules{
		APIIP:    ratelimit.Rule{PerSecond: 0.001, Burst: 4},
		APIToken: ratelimit.Rule{PerSecond: 0.001, Burst: 2},
	}, rec.record)
	send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/integrations", "token-a")
	send(l, ratelimit.KindAPI, "198.51.100.2:1", "/api/integrations", "token-a")
	assertLimited(t, send(l, ratelimit.KindAPI, "198.51.100.3:1", "/api/integrations", "token-a"), "a token past its burst from a third address")
	if w := send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/integrations", "token-b"); w.Code != http.StatusAccepted {
		t.Errorf("another token was limited: %d", w.Code)
	}
	// 198.51.100.1 has sent 2; its burst is 4.
	send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/integrations", "")
	send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/integrations", "token-c")
	assertLimited(t, send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/integrations", "token-d"), "an address past its burst")
	if rec.counts["api/token"] != 1 || rec.counts["api/ip"] != 1 {
		t.Errorf("limited counts %v, want one per token and one per address", rec.counts)
	}
}

func TestZeroRulesLimitNothing(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Rules{}, nil)
	for range 100 {
		if w := send(l, ratelimit.KindWebhook, "198.51.100.1:1", "/acme/webhook/call-events", ""); w.Code != http.StatusAccepted {
			t.Fatalf("no rules, yet %d", w.Code)
		}
		if w := charge(l, [16]byte{1}); w.Code != http.StatusAccepted {
			t.Fatalf("no rules, yet %d", w.Code)
		}
		if w := send(l, ratelimit.KindAPI, "198.51.100.1:1", "/api/calls", "t"); w.Code != http.StatusAccepted {
			t.Fatalf("no rules, yet %d", w.Code)
		}
	}
}

// BenchmarkAllow is the limiter's cost on every webhook: the per-address
// and per-integration buckets of a busy integration (rules high enough
// that the benchmark's own rate never meets them).
func BenchmarkAllow(b *testing.B) {
	high := ratelimit.Rule{PerSecond: 1e12, Burst: 1 << 30}
	l := ratelimit.New(ratelimit.Rules{WebhookIntegration: high, WebhookIP: high}, nil)
	r := httptest.NewRequest("POST", "http://calls.test/acme/webhook/call-events", nil)
	r.RemoteAddr = "198.51.100.1:4711"
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !l.Allow(w, r, ratelimit.KindWebhook) || !l.AllowIntegration(w, [16]byte{1}) {
				b.Fatal("limited under the defaults")
			}
		}
	})
}
