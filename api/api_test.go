package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/workers"
)

// These tests drive the admin API end to end over HTTP against a real
// callqueue process (servicetest): a fresh Postgres database and an
// in-process JetStream server per test, the fake VA for dialling.

const (
	ownerA = "owner-a"
	ownerB = "owner-b"
	// waitFor bounds every poll for something asynchronous.
	waitFor = 10 * time.Second
)

// client speaks to the admin API as one token ("" sends no Authorization).
type client struct {
	base  string
	token string
}

func (c client) do(t testing.TB, method, path string, body any) response {
	t.Helper()
	h := map[string]string{}
	if c.token != "" {
		h["Authorization"] = "Bearer " + c.token
	}
	return send(t, method, c.base+path, h, body)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// response is an answer kept whole, so tests can look at the raw body.
type response struct {
	what   string
	status int
	header http.Header
	body   []byte
}

// send makes a request. body is sent raw when it is a string or []byte,
// JSON-encoded otherwise.
func send(t testing.TB, method, target string, headers map[string]string, body any) response {
	t.Helper()
	status, header, raw := servicetest.Send(t, httpClient, method, target, headers, body)
	return response{what: method + " " + target, status: status, header: header, body: raw}
}

func (r response) expect(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d; body %s", r.what, r.status, status, r.body)
	}
	return r
}

func decodeAs[T any](t testing.TB, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s: decode %s: %v", r.what, r.body, err)
	}
	return v
}

// apiError is the contract's error body.
type apiError struct {
	Code    string
	Message string
	Field   string
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// expectError checks status and that the body is exactly
// {"error": {"code": snake_case, "message": text, "field"?: path}}.
func expectError(t testing.TB, r response, status int) apiError {
	t.Helper()
	r.expect(t, status)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type %q, want application/json", r.what, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Fatalf("%s: error body %s is not {\"error\": {...}}", r.what, r.body)
	}
	var fields map[string]any
	if err := json.Unmarshal(top["error"], &fields); err != nil {
		t.Fatalf("%s: error %s is not an object", r.what, top["error"])
	}
	var e apiError
	for k, v := range fields {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s: error.%s = %v, want a string", r.what, k, v)
		}
		switch k {
		case "code":
			e.Code = s
		case "message":
			e.Message = s
		case "field":
			if s == "" {
				t.Errorf("%s: error.field is present but empty", r.what)
			}
			e.Field = s
		default:
			t.Errorf("%s: unexpected error member %q in %s", r.what, k, r.body)
		}
	}
	if !snakeCase.MatchString(e.Code) {
		t.Errorf("%s: error code %q is not snake_case", r.what, e.Code)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Errorf("%s: error without a message: %s", r.what, r.body)
	}
	return e
}

// expectFieldError is expectError that also wants field ("" for none).
func expectFieldError(t testing.TB, r response, status int, field string) apiError {
	t.Helper()
	e := expectError(t, r, status)
	if e.Field != field {
		t.Errorf("%s: error field %q, want %q (%s)", r.what, e.Field, field, r.body)
	}
	return e
}

// world is one test's callqueue process with two owners and a fake VA.
type world struct {
	env  *servicetest.Env
	inst *servicetest.Instance
	va   *servicetest.FakeVA
	a, b client
	// aTokenID is the id of a's token.
	aTokenID uuid.UUID
}

func setup(t *testing.T) *world {
	t.Helper()
	return setupWith(t, servicetest.Options{})
}

func setupWith(t *testing.T, opt servicetest.Options) *world {
	t.Helper()
	env := servicetest.New(t)
	w := &world{env: env, va: servicetest.NewFakeVA(t), inst: env.Start(opt)}
	adminA := env.Admin(w.inst, ownerA)
	w.a, w.aTokenID = client{base: w.inst.URL, token: adminA.Token}, adminA.TokenID
	w.b = client{base: w.inst.URL, token: env.Admin(w.inst, ownerB).Token}
	return w
}

func integrationPath(in store.Integration, rest ...string) string {
	return "/api/integrations/" + in.ID.String() + strings.Join(rest, "")
}

func createIntegration(t testing.TB, c client, body map[string]any) store.Integration {
	t.Helper()
	return decodeAs[store.Integration](t, c.do(t, "POST", "/api/integrations", body).expect(t, http.StatusCreated))
}

func getIntegration(t testing.TB, c client, in store.Integration) store.Integration {
	t.Helper()
	return decodeAs[store.Integration](t, c.do(t, "GET", integrationPath(in), nil).expect(t, http.StatusOK))
}

func putVoice(t testing.TB, c client, in store.Integration, va *servicetest.FakeVA) {
	t.Helper()
	c.do(t, "PUT", integrationPath(in, "/config/voice"),
		map[string]any{"base_url": va.URL, "sip_id": "sip-1", "assistant_id": "asst-1"}).expect(t, http.StatusOK)
}

func addSecret(t testing.TB, c client, in store.Integration, kind, key, value string) store.Secret {
	t.Helper()
	return decodeAs[store.Secret](t, c.do(t, "POST", integrationPath(in, "/"+kind), map[string]any{"key": key, "value": value}).
		expect(t, http.StatusCreated))
}

// activeIntegration creates an integration of c's owner that dials through
// va, with optional call_handling overrides.
func activeIntegration(t testing.TB, c client, va *servicetest.FakeVA, name string, callHandling map[string]any) store.Integration {
	t.Helper()
	in := createIntegration(t, c, map[string]any{"name": name})
	if callHandling != nil {
		c.do(t, "PUT", integrationPath(in, "/config/call_handling"), callHandling).expect(t, http.StatusOK)
	}
	putVoice(t, c, in, va)
	addSecret(t, c, in, "secrets", "VA_AUTH_TOKEN", servicetest.FakeVAToken)
	in = getIntegration(t, c, in)
	if in.Status != store.StatusActive {
		t.Fatalf("integration %s is %s after voice config and VA_AUTH_TOKEN, want active", in.Name, in.Status)
	}
	return in
}

// originate queues a call through the call-originate webhook and waits
// until the call is stored (the webhook answers once JetStream has it).
func (w *world) originate(t testing.TB, c client, in store.Integration, phone string) uuid.UUID {
	t.Helper()
	var out struct {
		Success bool      `json:"success"`
		CallID  uuid.UUID `json:"callId"`
	}
	if code := servicetest.Webhook(t, w.inst, in, "call-originate", map[string]any{"phone_number": phone}, &out); code != http.StatusAccepted ||
		!out.Success || out.CallID == uuid.Nil {
		t.Fatalf("call-originate for %s: %d %+v", phone, code, out)
	}
	servicetest.Eventually(t, waitFor, "call "+out.CallID.String()+" to be stored", func() bool {
		return c.do(t, "GET", "/api/calls/"+out.CallID.String(), nil).status == http.StatusOK
	})
	return out.CallID
}

type callView struct {
	store.Call
	Events []store.CallEventRow `json:"events"`
}

func getCall(t testing.TB, c client, id uuid.UUID) callView {
	t.Helper()
	return decodeAs[callView](t, c.do(t, "GET", "/api/calls/"+id.String(), nil).expect(t, http.StatusOK))
}

func waitCallStatus(t testing.TB, c client, id uuid.UUID, status string) callView {
	t.Helper()
	var cv callView
	servicetest.Eventually(t, waitFor, "call "+id.String()+" to be "+status, func() bool {
		cv = getCall(t, c, id)
		return string(cv.Status) == status
	})
	return cv
}

// holds checks that cond stays true for all of d: a negative check
// ("nothing is dialled") needs a bound, and this is it.
func holds(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
	}
}

func keysOf(t testing.TB, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func names(list []store.Integration) []string {
	out := []string{}
	for _, in := range list {
		out = append(out, in.Name)
	}
	return out
}

func TestListIntegrations(t *testing.T) {
	t.Parallel()
	w := setup(t)
	// Created in this order; createdAt follows it.
	created := []string{"Bravo Sales", "alpha support", "Charlie Sales", "delta", "Echo 50% off"}
	for _, name := range created {
		createIntegration(t, w.a, map[string]any{"name": name})
	}
	createIntegration(t, w.b, map[string]any{"name": "Alpha Bravo Sales"}) // never seen by A
	pick := func(idx ...int) []string {
		out := []string{}
		for _, i := range idx {
			out = append(out, created[i])
		}
		return out
	}

	tests := []struct {
		name  string
		query string
		want  []string
		total int
	}{
		{"default order is createdAt", "", pick(0, 1, 2, 3, 4), 5},
		{"createdAt", "order=createdAt", pick(0, 1, 2, 3, 4), 5},
		{"-createdAt", "order=-createdAt", pick(4, 3, 2, 1, 0), 5},
		{"name ignores case", "order=name", pick(1, 0, 2, 3, 4), 5},
		{"-name", "order=-name", pick(4, 3, 2, 0, 1), 5},
		{"search ignores case", "search=SALES", pick(0, 2), 2},
		{"search matches the slug", "search=alpha-sup", pick(1), 1},
		{"search percent is literal", "search=" + url.QueryEscape("%"), pick(4), 1},
		{"search underscore is literal", "search=_", pick(), 0},
		{"search with order", "search=sales&order=-name", pick(2, 0), 2},
		{"search nothing", "search=zzz", pick(), 0},
		{"limit", "order=name&limit=2", pick(1, 0), 5},
		{"limit and offset", "order=name&limit=2&offset=2", pick(2, 3), 5},
		{"last page", "order=name&limit=2&offset=4", pick(4), 5},
		{"offset past the end keeps the total", "offset=10", pick(), 5},
		{"search, limit and offset", "search=sales&limit=1&offset=1", pick(2), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := w.a.do(t, "GET", "/api/integrations?"+tt.query, nil).expect(t, http.StatusOK)
			if len(tt.want) == 0 && strings.TrimSpace(string(r.body)) != "[]" {
				t.Errorf("empty list is %s, want []", r.body)
			}
			if got := names(decodeAs[[]store.Integration](t, r)); !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
			if got := r.header.Get("X-Total-Count"); got != strconv.Itoa(tt.total) {
				t.Errorf("X-Total-Count = %q, want %d", got, tt.total)
			}
		})
	}

	bad := []struct{ query, field string }{
		{"order=bogus", "order"},
		{"order=created_at", "order"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"offset=-1", "offset"},
		{"offset=x", "offset"},
	}
	for _, tt := range bad {
		t.Run("bad "+tt.query, func(t *testing.T) {
			t.Parallel()
			expectFieldError(t, w.a.do(t, "GET", "/api/integrations?"+tt.query, nil), http.StatusBadRequest, tt.field)
		})
	}
}

func TestCreateIntegrationSlug(t *testing.T) {
	t.Parallel()
	w := setup(t)

	first := w.a.do(t, "POST", "/api/integrations", map[string]any{"name": "Acme Sales!"}).expect(t, http.StatusCreated)
	wantKeys := []string{"agentPrompt", "createdAt", "elevenLabsAgentId", "id", "name", "ownerId", "phoneNumber",
		"saasAssistantName", "slug", "status", "updatedAt", "voiceAssistantSipId", "webhookToken"}
	if got := keysOf(t, first.body); !slices.Equal(got, wantKeys) {
		t.Errorf("integration JSON keys = %v, want %v", got, wantKeys)
	}
	in := decodeAs[store.Integration](t, first)
	if in.OwnerID != ownerA || in.Status != store.StatusNotConfigured || in.WebhookToken == "" || in.ID == uuid.Nil ||
		in.CreatedAt.IsZero() || in.UpdatedAt.IsZero() {
		t.Errorf("created integration = %+v", in)
	}

	// Derived slugs: transliterated; a taken, reserved or empty one gets a
	// random suffix, across owners (slugs are unique across the service).
	derived := []struct {
		c    client
		name string
		want string // a pattern
	}{
		{w.a, "acme  sales", `acme-sales-[a-z0-9]{6}`},
		{w.b, "ACME Sales", `acme-sales-[a-z0-9]{6}`},
		{w.a, "Другий проєкт", `drugiy-proyekt`},
		{w.a, "東京", `integration-[a-z0-9]{6}`},
		{w.a, "API", `api-[a-z0-9]{6}`},
		{w.a, " Docs ", `docs-[a-z0-9]{6}`},
		{w.a, strings.Repeat("Long name ", 20), `long-name-long-name-long-name-long-name-long-name-long-n`},
	}
	for _, tt := range derived {
		got := createIntegration(t, tt.c, map[string]any{"name": tt.name})
		if !regexp.MustCompile(`^` + tt.want + `$`).MatchString(got.Slug) {
			t.Errorf("slug of %q = %q, want %s", tt.name, got.Slug, tt.want)
		}
		if !store.SlugPattern.MatchString(got.Slug) {
			t.Errorf("slug %q of %q does not match the slug pattern", got.Slug, tt.name)
		}
	}
	taken := createIntegration(t, w.a, map[string]any{"name": "Taken", "slug": "acme-sales-2"})

	explicit := createIntegration(t, w.a, map[string]any{"name": "Zed", "slug": "zed-line"})
	if explicit.Slug != "zed-line" {
		t.Errorf("explicit slug = %q", explicit.Slug)
	}
	long := strings.Repeat("a", 63)
	if got := createIntegration(t, w.a, map[string]any{"name": "Long slug", "slug": long}); got.Slug != long {
		t.Errorf("63-character slug = %q", got.Slug)
	}

	clashes := []struct {
		name string
		c    client
		slug string
	}{
		{"own derived slug", w.a, "acme-sales"},
		{"another owner's slug", w.b, taken.Slug},
		{"own explicit slug", w.a, "zed-line"},
	}
	for _, tt := range clashes {
		t.Run("clash "+tt.name, func(t *testing.T) {
			e := expectFieldError(t, tt.c.do(t, "POST", "/api/integrations", map[string]any{"name": "X", "slug": tt.slug}),
				http.StatusConflict, "slug")
			if e.Code == "" {
				t.Error("no code")
			}
		})
	}

	invalid := []string{"api", "admin", "metrics", "healthz", "readyz", "docs", "", "Zed", "-zed", "zed_line", "zed line", strings.Repeat("a", 64)}
	for _, slug := range invalid {
		t.Run(fmt.Sprintf("invalid slug %q", slug), func(t *testing.T) {
			expectFieldError(t, w.a.do(t, "POST", "/api/integrations", map[string]any{"name": "X", "slug": slug}),
				http.StatusUnprocessableEntity, "slug")
			expectFieldError(t, w.a.do(t, "PATCH", integrationPath(explicit), map[string]any{"slug": slug}),
				http.StatusUnprocessableEntity, "slug")
		})
	}

	// Changing a slug obeys the same rules.
	expectFieldError(t, w.a.do(t, "PATCH", integrationPath(explicit), map[string]any{"slug": "acme-sales"}), http.StatusConflict, "slug")
	expectFieldError(t, w.a.do(t, "PATCH", integrationPath(explicit), map[string]any{"slug": taken.Slug}), http.StatusConflict, "slug")
	renamed := decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(explicit), map[string]any{"slug": "zed-renamed"}).expect(t, http.StatusOK))
	if renamed.Slug != "zed-renamed" || getIntegration(t, w.a, explicit).Slug != "zed-renamed" {
		t.Errorf("slug after PATCH = %q", renamed.Slug)
	}
	// The old slug is free again for its owner, and for nobody else.
	expectFieldError(t, w.b.do(t, "POST", "/api/integrations", map[string]any{"name": "Squatter", "slug": "zed-line"}),
		http.StatusConflict, "slug")
	if got := createIntegration(t, w.a, map[string]any{"name": "Zed again", "slug": "zed-line"}); got.Slug != "zed-line" {
		t.Errorf("freed slug = %q", got.Slug)
	}
}

func strp(s string) *string { return &s }

func TestUpdateIntegration(t *testing.T) {
	t.Parallel()
	w := setup(t)
	full := map[string]any{"name": "Full", "agentPrompt": "Be polite", "elevenLabsAgentId": "agent_1",
		"saasAssistantName": "Olena", "phoneNumber": "+380441234567", "voiceAssistantSipId": "sip-9"}
	eq := func(a, b *string) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	same := func(t *testing.T, got, want store.Integration) {
		t.Helper()
		if got.Name != want.Name || got.Slug != want.Slug || got.Status != want.Status || !eq(got.AgentPrompt, want.AgentPrompt) ||
			!eq(got.ElevenLabsAgentID, want.ElevenLabsAgentID) || !eq(got.SaasAssistantName, want.SaasAssistantName) ||
			!eq(got.PhoneNumber, want.PhoneNumber) || !eq(got.VoiceAssistantSipID, want.VoiceAssistantSipID) ||
			got.ID != want.ID || got.OwnerID != want.OwnerID || got.WebhookToken != want.WebhookToken || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("integration =\n%+v\nwant\n%+v", got, want)
		}
	}

	t.Run("PATCH keeps what it does not name", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, full)
		got := decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(in), map[string]any{"agentPrompt": "Be brief"}).expect(t, http.StatusOK))
		want := in
		want.AgentPrompt = strp("Be brief")
		same(t, got, want)
		same(t, getIntegration(t, w.a, in), want)
		if got.UpdatedAt.Before(in.UpdatedAt) {
			t.Errorf("updatedAt went back: %s < %s", got.UpdatedAt, in.UpdatedAt)
		}
		got = decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(in), map[string]any{"name": "Full renamed"}).expect(t, http.StatusOK))
		want.Name = "Full renamed" // the slug stays: URLs in CRMs keep working
		same(t, got, want)
	})

	t.Run("PUT clears omitted optional fields", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, full)
		got := decodeAs[store.Integration](t, w.a.do(t, "PUT", integrationPath(in), map[string]any{"name": "Replaced", "phoneNumber": "+380500000000"}).
			expect(t, http.StatusOK))
		want := in
		want.Name, want.PhoneNumber = "Replaced", strp("+380500000000")
		want.AgentPrompt, want.ElevenLabsAgentID, want.SaasAssistantName, want.VoiceAssistantSipID = nil, nil, nil, nil
		same(t, got, want)
		same(t, getIntegration(t, w.a, in), want)
		// The optional fields come back as JSON null, not missing.
		raw := w.a.do(t, "GET", integrationPath(in), nil).expect(t, http.StatusOK).body
		if !bytes.Contains(raw, []byte(`"agentPrompt":null`)) {
			t.Errorf("cleared agentPrompt is not null: %s", raw)
		}
	})

	t.Run("PUT needs a name", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, full)
		expectFieldError(t, w.a.do(t, "PUT", integrationPath(in), map[string]any{"agentPrompt": "x"}), http.StatusUnprocessableEntity, "name")
		same(t, getIntegration(t, w.a, in), in)
	})

	t.Run("read-only fields echoed from a GET are ignored", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, full)
		got := decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(in), map[string]any{
			"id": uuid.New(), "ownerId": ownerB, "webhookToken": "wh_forged", "createdAt": "2000-01-01T00:00:00Z",
			"updatedAt": "2000-01-01T00:00:00Z", "agentPrompt": "Echoed",
		}).expect(t, http.StatusOK))
		want := in
		want.AgentPrompt = strp("Echoed")
		same(t, got, want)
		expectError(t, w.b.do(t, "GET", integrationPath(in), nil), http.StatusNotFound)
	})

	t.Run("invalid values change nothing", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, full)
		for _, tt := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": ""}, "name"},
			{map[string]any{"name": strings.Repeat("n", 201)}, "name"},
			{map[string]any{"phoneNumber": strings.Repeat("1", 51)}, "phoneNumber"},
			{map[string]any{"voiceAssistantSipId": strings.Repeat("s", 51)}, "voiceAssistantSipId"},
			{map[string]any{"elevenLabsAgentId": strings.Repeat("e", 256)}, "elevenLabsAgentId"},
			{map[string]any{"saasAssistantName": strings.Repeat("a", 256)}, "saasAssistantName"},
			{map[string]any{"agentPrompt": "changed", "status": "failed"}, "status"},
		} {
			expectFieldError(t, w.a.do(t, "PATCH", integrationPath(in), tt.body), http.StatusUnprocessableEntity, tt.field)
		}
		same(t, getIntegration(t, w.a, in), in)
	})
}

func TestIntegrationStatusLifecycle(t *testing.T) {
	t.Parallel()
	w := setup(t)
	status := func(t *testing.T, in store.Integration) string { t.Helper(); return getIntegration(t, w.a, in).Status }
	want := func(t *testing.T, in store.Integration, s, after string) {
		t.Helper()
		if got := status(t, in); got != s {
			t.Fatalf("status after %s = %s, want %s", after, got, s)
		}
	}
	patchStatus := func(t *testing.T, in store.Integration, s string) store.Integration {
		t.Helper()
		return decodeAs[store.Integration](t, w.a.do(t, "PATCH", integrationPath(in), map[string]any{"status": s}).expect(t, http.StatusOK))
	}

	t.Run("voice then secret", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Voice first"})
		want(t, in, store.StatusNotConfigured, "create")
		putVoice(t, w.a, in, w.va)
		want(t, in, store.StatusNotConfigured, "voice config without its secret")
		sec := addSecret(t, w.a, in, "secrets", "VA_AUTH_TOKEN", servicetest.FakeVAToken)
		want(t, in, store.StatusActive, "voice config and VA_AUTH_TOKEN")
		w.a.do(t, "DELETE", integrationPath(in, "/secrets/", sec.ID.String()), nil).expect(t, http.StatusOK)
		want(t, in, store.StatusNotConfigured, "deleting VA_AUTH_TOKEN")
		addSecret(t, w.a, in, "secrets", "VA_AUTH_TOKEN", servicetest.FakeVAToken)
		want(t, in, store.StatusActive, "adding VA_AUTH_TOKEN back")
		w.a.do(t, "DELETE", integrationPath(in, "/config/voice"), nil).expect(t, http.StatusOK)
		want(t, in, store.StatusNotConfigured, "deleting the voice config")
		putVoice(t, w.a, in, w.va)
		want(t, in, store.StatusActive, "setting the voice config back")
		w.a.do(t, "PUT", integrationPath(in, "/config/voice"), map[string]any{"base_url": w.va.URL}).expect(t, http.StatusOK)
		want(t, in, store.StatusNotConfigured, "a voice config without sip_id")
	})

	t.Run("secret then voice", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Secret first"})
		addSecret(t, w.a, in, "secrets", "VA_AUTH_TOKEN", servicetest.FakeVAToken)
		want(t, in, store.StatusNotConfigured, "VA_AUTH_TOKEN without voice config")
		putVoice(t, w.a, in, w.va)
		want(t, in, store.StatusActive, "VA_AUTH_TOKEN and voice config")
	})

	t.Run("status given on create is ignored", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"paused", "active"} {
			in := createIntegration(t, w.a, map[string]any{"name": "Created " + s, "status": s})
			if in.Status != store.StatusNotConfigured {
				t.Errorf("created with status %q: %s, want not_configured", s, in.Status)
			}
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		t.Parallel()
		in := activeIntegration(t, w.a, w.va, "Pausable", nil)
		if got := patchStatus(t, in, store.StatusPaused); got.Status != store.StatusPaused {
			t.Fatalf("PATCH paused answered %s", got.Status)
		}
		want(t, in, store.StatusPaused, "PATCH paused")
		// Only PATCH clears paused: configuration changes leave it alone.
		putVoice(t, w.a, in, w.va)
		want(t, in, store.StatusPaused, "a voice config change while paused")
		secs := decodeAs[[]store.Secret](t, w.a.do(t, "GET", integrationPath(in, "/secrets"), nil).expect(t, http.StatusOK))
		w.a.do(t, "DELETE", integrationPath(in, "/secrets/", secs[0].ID.String()), nil).expect(t, http.StatusOK)
		want(t, in, store.StatusPaused, "deleting the secret while paused")
		// Resuming an incomplete integration lands in not_configured.
		if got := patchStatus(t, in, store.StatusActive); got.Status != store.StatusNotConfigured {
			t.Errorf("PATCH active without a secret answered %s, want not_configured", got.Status)
		}
		addSecret(t, w.a, in, "secrets", "VA_AUTH_TOKEN", servicetest.FakeVAToken)
		want(t, in, store.StatusActive, "adding the secret back")
		if got := patchStatus(t, in, store.StatusActive); got.Status != store.StatusActive {
			t.Errorf("PATCH active on an active integration answered %s", got.Status)
		}
	})

	t.Run("only paused and active can be set", func(t *testing.T) {
		t.Parallel()
		in := activeIntegration(t, w.a, w.va, "Strict status", nil)
		for _, s := range []string{"not_configured", "has_errors", "failed", "", "ACTIVE", "Paused", "bogus"} {
			expectFieldError(t, w.a.do(t, "PATCH", integrationPath(in), map[string]any{"status": s}), http.StatusUnprocessableEntity, "status")
			expectFieldError(t, w.a.do(t, "PUT", integrationPath(in), map[string]any{"name": "Strict status", "status": s}),
				http.StatusUnprocessableEntity, "status")
		}
		want(t, in, store.StatusActive, "rejected status changes")
	})
}

func TestPausedIntegrationDialsNothing(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := activeIntegration(t, w.a, w.va, "Paused dialling", nil)
	w.a.do(t, "PATCH", integrationPath(in), map[string]any{"status": "paused"}).expect(t, http.StatusOK)

	id := w.originate(t, w.a, in, "+380991230001")
	holds(t, time.Second, "a paused integration's call staying queued and undialled", func() bool {
		return len(w.va.Requests()) == 0 && getCall(t, w.a, id).Status == "queued"
	})

	w.a.do(t, "PATCH", integrationPath(in), map[string]any{"status": "active"}).expect(t, http.StatusOK)
	if o := w.va.Next(t, 5*time.Second); o.Call() != id.String() {
		t.Fatalf("resumed integration dialled %s, want %s", o.CallID, id)
	}
	waitCallStatus(t, w.a, id, "initiated")
}

func TestRotateWebhookToken(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Rotating"})
	old := in.WebhookToken
	endpoint := w.inst.URL + "/" + in.Slug + "/webhook/call-originate"
	body := map[string]any{"phone_number": "+380991230002"}
	// The three ways a webhook may present its token (contract §4).
	ways := map[string]func(token string) (string, map[string]string){
		"X-Webhook-Token": func(tok string) (string, map[string]string) {
			return endpoint, map[string]string{"X-Webhook-Token": tok}
		},
		"Bearer": func(tok string) (string, map[string]string) {
			return endpoint, map[string]string{"Authorization": "Bearer " + tok}
		},
		"query": func(tok string) (string, map[string]string) { return endpoint + "?token=" + url.QueryEscape(tok), nil },
	}
	for name, way := range ways {
		target, h := way(old)
		if r := send(t, "POST", target, h, body); r.status != http.StatusAccepted {
			t.Fatalf("old token by %s before rotation: %d %s", name, r.status, r.body)
		}
	}

	rotated := decodeAs[store.Integration](t, w.a.do(t, "POST", integrationPath(in, "/rotate-webhook-token"), nil).expect(t, http.StatusOK))
	if rotated.WebhookToken == "" || rotated.WebhookToken == old {
		t.Fatalf("rotated token %q (old %q)", rotated.WebhookToken, old)
	}
	if rotated.ID != in.ID || rotated.Slug != in.Slug || rotated.Name != in.Name {
		t.Errorf("rotation changed more than the token: %+v", rotated)
	}
	if got := getIntegration(t, w.a, in).WebhookToken; got != rotated.WebhookToken {
		t.Errorf("GET after rotation shows token %q, want %q", got, rotated.WebhookToken)
	}
	for name, way := range ways {
		// Within the webhook directory's cache TTL (2s) the old token stops working.
		servicetest.Eventually(t, 4*time.Second, "the old token to be refused by "+name, func() bool {
			target, h := way(old)
			r := send(t, "POST", target, h, body)
			return r.status == http.StatusUnauthorized
		})
		target, h := way(rotated.WebhookToken)
		if r := send(t, "POST", target, h, body); r.status != http.StatusAccepted {
			t.Errorf("new token by %s: %d %s", name, r.status, r.body)
		}
	}
	// A second rotation retires the first rotated token too.
	again := decodeAs[store.Integration](t, w.a.do(t, "POST", integrationPath(in, "/rotate-webhook-token"), nil).expect(t, http.StatusOK))
	if again.WebhookToken == rotated.WebhookToken || again.WebhookToken == old {
		t.Errorf("second rotation gave %q", again.WebhookToken)
	}
}

func TestDeleteIntegration(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Doomed", "slug": "doomed"})
	keep := createIntegration(t, w.a, map[string]any{"name": "Kept"})
	addSecret(t, w.a, in, "secrets", "SOME_KEY", "some-value-123")
	w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), map[string]any{"concurrency_limit": 2}).expect(t, http.StatusOK)
	callID := w.originate(t, w.a, in, "+380991230003")

	r := w.a.do(t, "DELETE", integrationPath(in), nil).expect(t, http.StatusOK)
	if got := decodeAs[map[string]any](t, r); len(got) != 1 || got["success"] != true {
		t.Errorf("DELETE answered %s, want {\"success\":true}", r.body)
	}
	for _, path := range []string{integrationPath(in), integrationPath(in, "/config"), integrationPath(in, "/secrets"),
		integrationPath(in, "/stats"), "/api/calls/" + callID.String()} {
		expectError(t, w.a.do(t, "GET", path, nil), http.StatusNotFound)
	}
	expectError(t, w.a.do(t, "DELETE", integrationPath(in), nil), http.StatusNotFound)
	list := decodeAs[[]store.Integration](t, w.a.do(t, "GET", "/api/integrations", nil).expect(t, http.StatusOK))
	if got := names(list); !slices.Equal(got, []string{keep.Name}) {
		t.Errorf("list after delete = %q", got)
	}
	servicetest.Eventually(t, 4*time.Second, "webhooks of the deleted integration to be 404", func() bool {
		return send(t, "POST", w.inst.URL+"/doomed/webhook/call-originate", map[string]string{"X-Webhook-Token": in.WebhookToken},
			map[string]any{"phone_number": "+380991230004"}).status == http.StatusNotFound
	})
	// Its slug is free again.
	if again := createIntegration(t, w.a, map[string]any{"name": "Reborn", "slug": "doomed"}); again.ID == in.ID {
		t.Error("a new integration got the deleted one's id")
	}
}

// defaultConfig is contract §3's list of known keys and defaults, written
// out here so that a drift in config.Defaults fails a test.
const defaultConfig = `{
	"call_handling": {"concurrency_limit": 3, "min_call_duration_secs": 5, "max_attempts": 3,
	                  "retry_delays_secs": [300, 900, 3600], "max_call_duration_secs": 1800, "calling_window": null},
	"voice":         {"provider": "va", "base_url": "", "sip_id": "", "assistant_id": ""},
	"crm_fields":    {"phone": "Phone", "name": "Name", "company": "Company", "source": "Source", "status": "Status"},
	"crm":           {"kind": "none"},
	"agent":         {"timezone": "Europe/Kyiv", "locale": "uk-UA"}
}`

// jsonEqual compares two JSON documents by value.
func jsonEqual(t testing.TB, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("decode want %s: %v", want, err)
	}
	a, _ := json.Marshal(g)
	b, _ := json.Marshal(w)
	return bytes.Equal(a, b)
}

func TestConfig(t *testing.T) {
	t.Parallel()
	w := setup(t)
	var defaults map[string]json.RawMessage
	if err := json.Unmarshal([]byte(defaultConfig), &defaults); err != nil {
		t.Fatal(err)
	}

	t.Run("GET shows every known key with its default", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Defaults"})
		r := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK)
		if !jsonEqual(t, r.body, defaultConfig) {
			t.Errorf("config = %s\nwant %s", r.body, defaultConfig)
		}
		for key, want := range defaults {
			r := w.a.do(t, "GET", integrationPath(in, "/config/", key), nil).expect(t, http.StatusOK)
			if !jsonEqual(t, r.body, string(want)) {
				t.Errorf("config/%s = %s, want %s", key, r.body, want)
			}
		}
		expectError(t, w.a.do(t, "GET", integrationPath(in, "/config/not_set_here"), nil), http.StatusNotFound)
		expectError(t, w.a.do(t, "GET", integrationPath(in, "/config/Bad%20Key"), nil), http.StatusNotFound)
	})

	t.Run("PUT fills defaults and DELETE restores them", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Put config"})
		want := `{"concurrency_limit": 2, "min_call_duration_secs": 5, "max_attempts": 3,
			"retry_delays_secs": [300, 900, 3600], "max_call_duration_secs": 1800, "calling_window": null}`
		r := w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), map[string]any{"concurrency_limit": 2}).expect(t, http.StatusOK)
		if !jsonEqual(t, r.body, want) {
			t.Errorf("PUT answered %s, want %s", r.body, want)
		}
		if r := w.a.do(t, "GET", integrationPath(in, "/config/call_handling"), nil).expect(t, http.StatusOK); !jsonEqual(t, r.body, want) {
			t.Errorf("GET after PUT = %s, want %s", r.body, want)
		}
		window := `{"concurrency_limit": 1, "min_call_duration_secs": 5, "max_attempts": 3, "retry_delays_secs": [60],
			"max_call_duration_secs": 1800,
			"calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "days": [1, 2, 3, 4, 5]}}`
		w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), window).expect(t, http.StatusOK)
		if r := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK); !jsonEqual(t, decodeAs[map[string]json.RawMessage](t, r)["call_handling"], window) {
			t.Errorf("config after PUT = %s", r.body)
		}
		// The stats' limit follows the config.
		if st := decodeAs[store.Stats](t, w.a.do(t, "GET", integrationPath(in, "/stats"), nil).expect(t, http.StatusOK)); st.Limit != 1 {
			t.Errorf("stats limit = %d, want 1", st.Limit)
		}
		r = w.a.do(t, "DELETE", integrationPath(in, "/config/call_handling"), nil).expect(t, http.StatusOK)
		if !jsonEqual(t, r.body, string(defaults["call_handling"])) {
			t.Errorf("DELETE answered %s, want the default", r.body)
		}
		if r := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK); !jsonEqual(t, r.body, defaultConfig) {
			t.Errorf("config after DELETE = %s", r.body)
		}
	})

	t.Run("PUT rejects invalid values naming the field", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Invalid config"})
		w.a.do(t, "PUT", integrationPath(in, "/config/call_handling"), map[string]any{"concurrency_limit": 4}).expect(t, http.StatusOK)
		before := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK).body
		window := func(w map[string]any) map[string]any {
			base := map[string]any{"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00"}
			for k, v := range w {
				base[k] = v
			}
			return map[string]any{"calling_window": base}
		}
		tests := []struct {
			key   string
			body  any
			field string
		}{
			{"call_handling", map[string]any{"concurrency_limit": 0}, "concurrency_limit"},
			{"call_handling", map[string]any{"concurrency_limit": 1001}, "concurrency_limit"},
			{"call_handling", map[string]any{"max_attempts": 0}, "max_attempts"},
			{"call_handling", map[string]any{"min_call_duration_secs": -1}, "min_call_duration_secs"},
			{"call_handling", map[string]any{"max_call_duration_secs": 5}, "max_call_duration_secs"},
			{"call_handling", map[string]any{"retry_delays_secs": []int{}}, "retry_delays_secs"},
			{"call_handling", map[string]any{"retry_delays_secs": []int{10, -1}}, "retry_delays_secs[1]"},
			{"call_handling", window(map[string]any{"timezone": "Mars/Olympus"}), "calling_window.timezone"},
			{"call_handling", window(map[string]any{"start": "9am"}), "calling_window.start"},
			{"call_handling", window(map[string]any{"end": "09:00"}), "calling_window.end"},
			{"call_handling", window(map[string]any{"days": []int{1, 8}}), "calling_window.days[1]"},
			{"voice", map[string]any{"provider": "sip"}, "provider"},
			{"voice", map[string]any{"base_url": "ftp://va.example"}, "base_url"},
			{"voice", map[string]any{"provider": "elevenlabs", "via": "pigeon"}, "via"},
			{"voice", map[string]any{"caller_ids": []map[string]any{{"number": "+14155550100"}, {"number": "+1 415 555 0100"}}}, "caller_ids[1].number"},
			{"crm", map[string]any{"kind": "salesforce"}, "kind"},
			{"crm", map[string]any{"kind": "nethunt"}, "folder_id"},
			{"crm", map[string]any{"kind": "webhook"}, "update_url"},
			{"crm_fields", map[string]any{"phone": " "}, "phone"},
			{"agent", map[string]any{"timezone": "Nowhere/City"}, "timezone"},
		}
		for _, tt := range tests {
			expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/config/", tt.key), tt.body), http.StatusUnprocessableEntity, tt.field)
		}
		if after := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK).body; !jsonEqual(t, after, string(before)) {
			t.Errorf("rejected PUTs changed the config:\n%s\nwas\n%s", after, before)
		}
	})

	t.Run("PUT rejects bodies it cannot read with 400", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Bad config bodies"})
		tests := []struct {
			key, body, field string
		}{
			{"call_handling", `{"concurrency_limit": `, ""},
			{"call_handling", `not json`, ""},
			{"call_handling", `{"concurrency_limit": 2} {}`, ""},
			{"call_handling", `{"concurrency_limit": "2"}`, "concurrency_limit"},
			{"call_handling", `{"retry_delays_secs": "60"}`, "retry_delays_secs"},
			{"call_handling", `{"concurency_limit": 2}`, "concurency_limit"},
			{"call_handling", `{"calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "weekdays": [1]}}`, "calling_window.weekdays"},
			{"voice", `{"sip": "x"}`, "sip"},
			{"voice", `{"sip_id": 7}`, "sip_id"},
			{"crm", `{"kind": true}`, "kind"},
			{"agent", `{"locale": ["uk"]}`, "locale"},
			{"free_form", `{"a": `, ""},
		}
		for _, tt := range tests {
			expectFieldError(t, w.a.do(t, "PUT", integrationPath(in, "/config/", tt.key), tt.body), http.StatusBadRequest, tt.field)
		}
		if r := w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK); !jsonEqual(t, r.body, defaultConfig) {
			t.Errorf("rejected PUTs changed the config: %s", r.body)
		}
	})

	t.Run("free-form keys", func(t *testing.T) {
		t.Parallel()
		in := createIntegration(t, w.a, map[string]any{"name": "Free form"})
		value := `{"anything": [1, "two", {"three": null}], "nested": {"ok": true}}`
		r := w.a.do(t, "PUT", integrationPath(in, "/config/my.custom-key_1"), value).expect(t, http.StatusOK)
		if !jsonEqual(t, r.body, value) {
			t.Errorf("PUT free-form answered %s", r.body)
		}
		if r := w.a.do(t, "GET", integrationPath(in, "/config/my.custom-key_1"), nil).expect(t, http.StatusOK); !jsonEqual(t, r.body, value) {
			t.Errorf("GET free-form = %s", r.body)
		}
		w.a.do(t, "PUT", integrationPath(in, "/config/greeting"), `"Добрий день"`).expect(t, http.StatusOK)
		all := decodeAs[map[string]json.RawMessage](t, w.a.do(t, "GET", integrationPath(in, "/config"), nil).expect(t, http.StatusOK))
		if !jsonEqual(t, all["my.custom-key_1"], value) || !jsonEqual(t, all["greeting"], `"Добрий день"`) || len(all) != len(defaults)+2 {
			t.Errorf("config with free-form keys = %v", all)
		}
		w.a.do(t, "DELETE", integrationPath(in, "/config/my.custom-key_1"), nil).expect(t, http.StatusOK)
		expectError(t, w.a.do(t, "GET", integrationPath(in, "/config/my.custom-key_1"), nil), http.StatusNotFound)
	})
}

// phoneQuery encodes a phone number for a query (a raw "+" is a space).
func phoneQuery(p string) string { return "phone=" + url.QueryEscape(p) }

func TestListAndGetCalls(t *testing.T) {
	t.Parallel()
	w := setup(t)
	// Not configured: the calls stay queued, so the lists are stable.
	one := createIntegration(t, w.a, map[string]any{"name": "Calls one"})
	two := createIntegration(t, w.a, map[string]any{"name": "Calls two"})
	other := createIntegration(t, w.b, map[string]any{"name": "Calls of B"})

	const p1, p2, p3 = "+380990000001", "+380990000002", "+380990000003"
	// createdAt comes from the test clock; moving it orders the calls.
	var ids []uuid.UUID
	for _, c := range []struct {
		in    store.Integration
		phone string
	}{{one, p1}, {one, p2}, {one, p3}, {two, p1}} {
		ids = append(ids, w.originate(t, w.a, c.in, c.phone))
		w.env.Clock.Advance(time.Minute)
	}
	w.originate(t, w.b, other, p1)
	cancelled := decodeAs[store.Call](t, w.a.do(t, "POST", "/api/calls/"+ids[1].String()+"/cancel", nil).expect(t, http.StatusOK))
	if cancelled.Status != "cancelled" {
		t.Fatalf("cancelled call is %s", cancelled.Status)
	}

	q := func(parts ...string) string { return "/api/calls?" + strings.Join(parts, "&") }
	byOne := "integrationId=" + one.ID.String()
	tests := []struct {
		name string
		path string
		want []int // indexes into ids, in order
	}{
		{"every call of the owner, newest first", q(), []int{3, 2, 1, 0}},
		{"by integration", q(byOne), []int{2, 1, 0}},
		{"oldest first", q(byOne, "order=createdAt"), []int{0, 1, 2}},
		{"newest first", q(byOne, "order=-createdAt"), []int{2, 1, 0}},
		{"by status", q("status=cancelled"), []int{1}},
		{"by status and integration", q(byOne, "status=queued", "order=createdAt"), []int{0, 2}},
		{"by phone", q(phoneQuery(p1)), []int{3, 0}},
		{"by phone and integration", q(phoneQuery(p1), "integrationId="+two.ID.String()), []int{3}},
		{"limit", q("order=createdAt", "limit=2"), []int{0, 1}},
		{"limit and offset", q("order=createdAt", "limit=2", "offset=1"), []int{1, 2}},
		{"offset past the end", q("offset=4"), []int{}},
		{"another owner's integration", q("integrationId=" + other.ID.String()), []int{}},
		{"unknown integration", q("integrationId=" + uuid.NewString()), []int{}},
		{"no match", q(phoneQuery("+380000000000")), []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := w.a.do(t, "GET", tt.path, nil).expect(t, http.StatusOK)
			if len(tt.want) == 0 && strings.TrimSpace(string(r.body)) != "[]" {
				t.Errorf("empty list is %s, want []", r.body)
			}
			var got, want []uuid.UUID
			for _, c := range decodeAs[[]store.Call](t, r) {
				got = append(got, c.ID)
			}
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("calls = %v, want %v", got, want)
			}
		})
	}

	for _, tt := range []struct{ query, field string }{
		{"status=bogus", "status"},
		{"integrationId=not-a-uuid", "integrationId"},
		{"order=name", "order"},
		{"limit=0", "limit"},
		{"offset=-3", "offset"},
		{"createdFrom=yesterday", "createdFrom"},
	} {
		t.Run("bad "+tt.query, func(t *testing.T) {
			t.Parallel()
			expectFieldError(t, w.a.do(t, "GET", q(tt.query), nil), http.StatusBadRequest, tt.field)
		})
	}

	t.Run("get with events oldest first", func(t *testing.T) {
		t.Parallel()
		r := w.a.do(t, "GET", "/api/calls/"+ids[1].String(), nil).expect(t, http.StatusOK)
		keys := keysOf(t, r.body)
		for _, k := range []string{"id", "integrationId", "phoneNumber", "status", "attempt", "maxAttempts", "nextRetryAt",
			"externalCallId", "conversationId", "recordId", "durationSecs", "outcome", "dynamicVariables", "createdAt", "updatedAt", "events"} {
			if !slices.Contains(keys, k) {
				t.Errorf("call JSON lacks %q: %s", k, r.body)
			}
		}
		c := decodeAs[callView](t, r)
		if c.ID != ids[1] || c.IntegrationID != one.ID || c.PhoneNumber != p2 || c.Status != "cancelled" || c.MaxAttempts != 3 {
			t.Errorf("call = %+v", c.Call)
		}
		var kinds []string
		for i, e := range c.Events {
			kinds = append(kinds, e.Kind)
			if i > 0 && (e.ID <= c.Events[i-1].ID || e.OccurredAt.Before(c.Events[i-1].OccurredAt)) {
				t.Errorf("events out of order: %+v before %+v", c.Events[i-1], e)
			}
		}
		if !slices.Equal(kinds, []string{"queued", "cancel"}) {
			t.Errorf("event kinds = %v, want [queued cancel]", kinds)
		}
		if last := c.Events[len(c.Events)-1]; last.FromStatus == nil || *last.FromStatus != "queued" || last.ToStatus == nil || *last.ToStatus != "cancelled" {
			t.Errorf("cancel event = %+v", last)
		}
	})

	t.Run("unknown calls are 404", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{uuid.NewString(), "not-a-uuid"} {
			expectError(t, w.a.do(t, "GET", "/api/calls/"+id, nil), http.StatusNotFound)
			expectError(t, w.a.do(t, "POST", "/api/calls/"+id+"/cancel", nil), http.StatusNotFound)
		}
	})
}

func TestCancelCall(t *testing.T) {
	t.Parallel()
	w := setup(t)

	t.Run("cancelling an initiated call frees its slot", func(t *testing.T) {
		t.Parallel()
		// No periodic sweep: only the cancel itself can get the next call dialled.
		w := setupWith(t, servicetest.Options{Workers: workers.Config{SweepEvery: time.Hour}})
		va := w.va
		in := activeIntegration(t, w.a, va, "Cancel frees", map[string]any{"concurrency_limit": 1})
		first := w.originate(t, w.a, in, "+380991110001")
		if o := va.Next(t, 5*time.Second); o.Call() != first.String() {
			t.Fatalf("dialled %s, want %s", o.CallID, first)
		}
		waitCallStatus(t, w.a, first, "initiated")
		second := w.originate(t, w.a, in, "+380991110002")
		holds(t, 300*time.Millisecond, "the second call waiting for the only slot", func() bool {
			return len(va.Requests()) == 1 && getCall(t, w.a, second).Status == "queued"
		})

		c := decodeAs[store.Call](t, w.a.do(t, "POST", "/api/calls/"+first.String()+"/cancel", nil).expect(t, http.StatusOK))
		if c.ID != first || c.Status != "cancelled" {
			t.Fatalf("cancel answered %+v", c)
		}
		// There is no hang-up request: the cancelled call may still be live
		// at the VA, and keeps its slot until its call_end.
		holds(t, 300*time.Millisecond, "the slot held until the cancelled call ends", func() bool {
			return len(va.Requests()) == 1 && getCall(t, w.a, second).Status == "queued"
		})
		if code := servicetest.Webhook(t, w.inst, in, "call-events", map[string]any{"eventType": "call_end",
			"callId": first.String() + ".1", "duration": 20}, nil); code != http.StatusAccepted {
			t.Fatalf("call-events: %d", code)
		}
		if o := va.Next(t, 2*time.Second); o.Call() != second.String() {
			t.Fatalf("after the cancel VA got %s, want %s", o.CallID, second)
		}
		waitCallStatus(t, w.a, second, "initiated")
		got := getCall(t, w.a, first)
		if cancel := got.Events[len(got.Events)-2]; cancel.Kind != "cancel" || cancel.FromStatus == nil || *cancel.FromStatus != "initiated" {
			t.Errorf("the cancelled call's cancel event = %+v", cancel)
		}
		if end := got.Events[len(got.Events)-1]; end.Kind != "call_end" || end.ToStatus == nil || *end.ToStatus != "cancelled" {
			t.Errorf("the cancelled call's last event = %+v", end)
		}
		if st := decodeAs[store.Stats](t, w.a.do(t, "GET", integrationPath(in, "/stats"), nil).expect(t, http.StatusOK)); st.Active != 1 || st.Cancelled != 1 || st.Queued != 0 {
			t.Errorf("stats after cancel = %+v", st)
		}
	})

	t.Run("a terminal call is a conflict", func(t *testing.T) {
		t.Parallel()
		queued := createIntegration(t, w.a, map[string]any{"name": "Cancel twice"})
		id := w.originate(t, w.a, queued, "+380991110003")
		w.a.do(t, "POST", "/api/calls/"+id.String()+"/cancel", nil).expect(t, http.StatusOK)

		// A VA that refuses the originate with a 4xx fails the only attempt.
		refusing := servicetest.NewFakeVA(t)
		refusing.SetStatus(http.StatusBadRequest)
		in := activeIntegration(t, w.a, refusing, "Cancel failed", map[string]any{"max_attempts": 1})
		failed := w.originate(t, w.a, in, "+380991110004")
		waitCallStatus(t, w.a, failed, "failed")

		for status, id := range map[string]uuid.UUID{"cancelled": id, "failed": failed} {
			expectError(t, w.a.do(t, "POST", "/api/calls/"+id.String()+"/cancel", nil), http.StatusConflict)
			if got := getCall(t, w.a, id).Status; string(got) != status {
				t.Errorf("%s call became %s after a refused cancel", status, got)
			}
		}
	})
}

func TestStats(t *testing.T) {
	t.Parallel()
	w := setup(t)
	idle := createIntegration(t, w.a, map[string]any{"name": "Idle"})
	r := w.a.do(t, "GET", integrationPath(idle, "/stats"), nil).expect(t, http.StatusOK)
	if !jsonEqual(t, r.body, `{"active": 0, "limit": 3, "queued": 0, "retryScheduled": 0, "waitingPostcall": 0,
		"completed": 0, "failed": 0, "cancelled": 0}`) {
		t.Errorf("stats of an idle integration = %s", r.body)
	}

	in := activeIntegration(t, w.a, w.va, "Counted", map[string]any{"concurrency_limit": 1, "retry_delays_secs": []int{3600}})
	var ids []uuid.UUID
	for i := range 4 {
		ids = append(ids, w.originate(t, w.a, in, fmt.Sprintf("+38099222000%d", i)))
		w.env.Clock.Advance(time.Second) // queued calls are dialled oldest first
		if i == 0 {
			w.va.Next(t, 5*time.Second)
			waitCallStatus(t, w.a, ids[0], "initiated")
		}
	}
	w.a.do(t, "POST", "/api/calls/"+ids[3].String()+"/cancel", nil).expect(t, http.StatusOK)

	// check compares the stats with what they should be and with the
	// calls list counted by status.
	check := func(want store.Stats) {
		t.Helper()
		var got store.Stats
		servicetest.Eventually(t, waitFor, fmt.Sprintf("stats %+v", want), func() bool {
			got = decodeAs[store.Stats](t, w.a.do(t, "GET", integrationPath(in, "/stats"), nil).expect(t, http.StatusOK))
			return got == want
		})
		calls := decodeAs[[]store.Call](t, w.a.do(t, "GET", "/api/calls?integrationId="+in.ID.String(), nil).expect(t, http.StatusOK))
		counted := store.Stats{Limit: want.Limit}
		for _, c := range calls {
			switch c.Status {
			case "initiated", "in_progress":
				counted.Active++
			case "queued":
				counted.Queued++
			case "retry_scheduled":
				counted.RetryScheduled++
			case "waiting_postcall":
				counted.WaitingPostcall++
			case "completed":
				counted.Completed++
			case "failed":
				counted.Failed++
			case "cancelled":
				counted.Cancelled++
			}
		}
		if counted != got {
			t.Fatalf("stats %+v do not match the calls list %+v", got, counted)
		}
	}
	check(store.Stats{Active: 1, Limit: 1, Queued: 2, Cancelled: 1})

	event := func(id uuid.UUID, kind string, duration float64) {
		t.Helper()
		if code := servicetest.Webhook(t, w.inst, in, "call-events", map[string]any{"eventType": kind, "callId": id.String(), "duration": duration}, nil); code != http.StatusAccepted {
			t.Fatalf("call-events %s: %d", kind, code)
		}
	}
	// A short call is retried later and frees the slot for the next one.
	event(ids[0], "call_end", 2)
	check(store.Stats{Active: 1, Limit: 1, Queued: 1, RetryScheduled: 1, Cancelled: 1})
	// An answered call waits for its post-call report; the last one is dialled.
	waitCallStatus(t, w.a, ids[1], "initiated")
	event(ids[1], "call_start", 0)
	event(ids[1], "call_end", 45)
	check(store.Stats{Active: 1, Limit: 1, WaitingPostcall: 1, RetryScheduled: 1, Cancelled: 1})
	// Cancelling the retry leaves the counts consistent.
	w.a.do(t, "POST", "/api/calls/"+ids[0].String()+"/cancel", nil).expect(t, http.StatusOK)
	check(store.Stats{Active: 1, Limit: 1, WaitingPostcall: 1, Cancelled: 2})
}

// TestDatabaseDown: with Postgres gone the admin API answers 503 in the
// contract's shape, not a 500 or a 401.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	w := setup(t)
	w.a.do(t, "GET", "/api/integrations", nil).expect(t, http.StatusOK)
	w.inst.Pool.Close() // this process's pool only; the test database stays
	for _, path := range []string{"/api/integrations", "/api/calls", "/api/integrations/" + uuid.NewString()} {
		if e := expectError(t, w.a.do(t, "GET", path, nil), http.StatusServiceUnavailable); e.Code != "unavailable" {
			t.Errorf("GET %s: code %q, want unavailable", path, e.Code)
		}
	}
}
