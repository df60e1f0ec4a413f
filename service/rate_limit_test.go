package service_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/service/servicetest"
)

// Past its burst an integration's webhooks and a client's requests are
// answered 429 with Retry-After in the contract's error shape, counted in
// callqueue_http_rate_limited_total; other integrations, clients and
// tokens go on. Clients are told apart through a trusted proxy's
// X-Forwarded-For, as they would be behind a load balancer.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	slow := ratelimit.Rule{PerSecond: 0.001, Burst: 3} // no refill within the test
	in := env.Start(servicetest.Options{TrustedProxies: "127.0.0.0/8",
		RateLimits: ratelimit.Rules{WebhookIntegration: slow, WebhookIP: ratelimit.Rule{PerSecond: 0.001, Burst: 6},
			APIIP: ratelimit.Rule{PerSecond: 0.001, Burst: 100}, APIToken: ratelimit.Rule{PerSecond: 0.001, Burst: 100}}})
	// The integrations are made before the API limits matter.
	admin := env.Admin(in, "owner-rate")
	acme := admin.CreateIntegration("Rate Acme", nil, nil)
	globex := admin.CreateIntegration("Rate Globex", nil, nil)

	event := func(integ servicetest.Integration, client string) (int, http.Header, []byte) {
		t.Helper()
		return servicetest.Send(t, http.DefaultClient, "POST", in.URL+"/"+integ.Slug+"/webhook/call-events",
			map[string]string{"X-Webhook-Token": integ.WebhookToken, "X-Forwarded-For": client},
			`{"eventType":"call_start","callId":"va-1"}`)
	}
	for i := range 3 {
		if status, _, raw := event(acme, "198.51.100."+strconv.Itoa(i+1)); status != http.StatusAccepted {
			t.Fatalf("acme's event %d within the burst: %d %s", i+1, status, raw)
		}
	}
	assertTooMany(t, "acme past its burst", event)(acme, "198.51.100.9")
	if status, _, raw := event(globex, "198.51.100.1"); status != http.StatusAccepted {
		t.Errorf("globex was limited by acme's burst: %d %s", status, raw)
	}

	// One client address spends its burst (6) on acme, which refuses them
	// all: refused requests count against their sender too.
	for range 6 {
		event(acme, "198.51.100.20")
	}
	assertTooMany(t, "an address past its burst", event)(globex, "198.51.100.20")
	if status, _, raw := event(globex, "198.51.100.21"); status != http.StatusAccepted {
		t.Errorf("another address was limited: %d %s", status, raw)
	}

	// Unlimited routes stay open to the limited address.
	if status, _, _ := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/healthz",
		map[string]string{"X-Forwarded-For": "198.51.100.20"}, nil); status != http.StatusOK {
		t.Errorf("/healthz for a limited address: %d", status)
	}

	_, _, metrics := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/metrics", nil, nil)
	for _, want := range []string{`callqueue_http_rate_limited_total{kind="webhook",limit="integration"}`,
		`callqueue_http_rate_limited_total{kind="webhook",limit="ip"}`} {
		if !metricPositive(string(metrics), want) {
			t.Errorf("%s is not counted", want)
		}
	}
	if strings.Contains(string(metrics), "198.51.100") {
		t.Error("/metrics names a client address")
	}
}

// The admin API is limited per token and per client address.
func TestAPIRateLimits(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{TrustedProxies: "127.0.0.0/8",
		RateLimits: ratelimit.Rules{APIIP: ratelimit.Rule{PerSecond: 0.001, Burst: 4}, APIToken: ratelimit.Rule{PerSecond: 0.001, Burst: 2}}})
	one, other := env.Admin(in, "owner-api-rate-1"), env.Admin(in, "owner-api-rate-2")
	list := func(a *servicetest.Admin, client string) (int, http.Header, []byte) {
		t.Helper()
		return servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/api/integrations",
			map[string]string{"Authorization": "Bearer " + a.Token, "X-Forwarded-For": client}, nil)
	}
	as := func(a *servicetest.Admin) func(servicetest.Integration, string) (int, http.Header, []byte) {
		return func(_ servicetest.Integration, client string) (int, http.Header, []byte) { return list(a, client) }
	}
	for i := range 2 {
		if status, _, raw := list(one, "198.51.100."+strconv.Itoa(i+1)); status != http.StatusOK {
			t.Fatalf("request %d within the token's burst: %d %s", i+1, status, raw)
		}
	}
	assertTooMany(t, "a token past its burst", as(one))(servicetest.Integration{}, "198.51.100.3")
	if status, _, raw := list(other, "198.51.100.1"); status != http.StatusOK {
		t.Errorf("another token was limited: %d %s", status, raw)
	}
	// 198.51.100.1 has sent 2 of its 4; unknown tokens spend them too.
	list(&servicetest.Admin{Token: "not-a-token"}, "198.51.100.1")
	list(&servicetest.Admin{Token: "nor-this"}, "198.51.100.1")
	assertTooMany(t, "an address past its burst", as(other))(servicetest.Integration{}, "198.51.100.1")
}

// assertTooMany sends one request through send and checks it is refused
// with 429, a Retry-After in whole seconds and the contract's error shape.
func assertTooMany(t *testing.T, what string, send func(servicetest.Integration, string) (int, http.Header, []byte)) func(servicetest.Integration, string) {
	return func(integ servicetest.Integration, client string) {
		t.Helper()
		status, header, raw := send(integ, client)
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		retry, err := strconv.Atoi(header.Get("Retry-After"))
		if status != http.StatusTooManyRequests || err != nil || retry < 1 {
			t.Fatalf("%s: %d, Retry-After %q; want 429 with Retry-After in seconds", what, status, header.Get("Retry-After"))
		}
		if err := json.Unmarshal(raw, &body); err != nil || body.Error.Code != "rate_limited" {
			t.Errorf("%s: %s is not the contract's error shape", what, raw)
		}
	}
}

// metricPositive reports whether the exposition has series with a value above 0.
func metricPositive(exposition, series string) bool {
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return err == nil && v > 0
		}
	}
	return false
}

// TestAnonymousRequestsNeverSpendATenantsBudget: a client without the
// token — a wrong or missing token, a forged post-call signature, the
// public health, docs and openapi.json — sends many times the
// integration's burst; the tenant's own webhooks are still taken up to
// that burst. The anonymous client is bounded by its own address.
func TestAnonymousRequestsNeverSpendATenantsBudget(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{TrustedProxies: "127.0.0.0/8",
		RateLimits: ratelimit.Rules{WebhookIntegration: ratelimit.Rule{PerSecond: 0.001, Burst: 3},
			WebhookIP: ratelimit.Rule{PerSecond: 0.001, Burst: 40}}})
	admin := env.Admin(in, "owner-anonymous")
	acme := admin.CreateIntegration("Anonymous Acme", nil, nil)
	signed := admin.CreateIntegration("Anonymous Signed", nil, nil)
	admin.AddSecret(signed, "ELEVENLABS_WEBHOOK_SECRET", "whsec-anonymous-0123456789")

	const attacker, tenant = "198.51.100.50", "198.51.100.60"
	send := func(method, path string, headers map[string]string, body any) int {
		t.Helper()
		status, _, _ := servicetest.Send(t, http.DefaultClient, method, in.URL+path, headers, body)
		return status
	}
	anonymous := []func() int{
		func() int {
			return send("POST", "/"+acme.Slug+"/webhook/call-events", map[string]string{"X-Forwarded-For": attacker}, `{}`)
		},
		func() int {
			return send("POST", "/"+acme.Slug+"/webhook/call-originate",
				map[string]string{"X-Forwarded-For": attacker, "X-Webhook-Token": "wrong"}, `{"phone_number":"+380501234567"}`)
		},
		func() int {
			return send("GET", "/"+acme.Slug+"/health", map[string]string{"X-Forwarded-For": attacker}, nil)
		},
		func() int {
			return send("GET", "/"+acme.Slug+"/docs", map[string]string{"X-Forwarded-For": attacker}, nil)
		},
		func() int {
			return send("GET", "/"+acme.Slug+"/openapi.json", map[string]string{"X-Forwarded-For": attacker}, nil)
		},
		func() int {
			return send("POST", "/"+signed.Slug+"/webhook/agent-postcall", map[string]string{"X-Forwarded-For": attacker,
				"ElevenLabs-Signature": "t=" + strconv.FormatInt(env.Clock.Now().Unix(), 10) + ",v0=00"}, `{"type":"post_call_transcription","data":{}}`)
		},
	}
	for i := range 36 {
		if status := anonymous[i%len(anonymous)](); status == http.StatusTooManyRequests {
			t.Fatalf("anonymous request %d was rate limited before its address's burst", i+1)
		}
	}
	event := func(integ servicetest.Integration, client string) (int, http.Header, []byte) {
		t.Helper()
		return servicetest.Send(t, http.DefaultClient, "POST", in.URL+"/"+integ.Slug+"/webhook/call-events",
			map[string]string{"X-Webhook-Token": integ.WebhookToken, "X-Forwarded-For": client}, `{"eventType":"call_start","callId":"va-1"}`)
	}
	for i := range 3 {
		if status, _, raw := event(acme, tenant); status != http.StatusAccepted {
			t.Fatalf("the tenant's event %d after the anonymous burst: %d %s", i+1, status, raw)
		}
	}
	assertTooMany(t, "the tenant past its own burst", event)(acme, tenant)

	// The anonymous address has sent 36 of its 40.
	for range 4 {
		anonymous[0]()
	}
	if status := anonymous[3](); status != http.StatusTooManyRequests {
		t.Errorf("the anonymous address past its burst: %d, want 429", status)
	}
}
