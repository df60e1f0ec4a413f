package webhooks_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// openAPIDoc fetches and parses /{slug}/openapi.json.
func (h *harness) openAPIDoc(t *testing.T, integ servicetest.Integration, header http.Header) ([]byte, libopenapi.Document) {
	t.Helper()
	r := h.send(t, "GET", "/"+integ.Slug+"/openapi.json", header, nil)
	if r.status != http.StatusOK {
		t.Fatalf("openapi.json: %d %s", r.status, r.body)
	}
	doc, err := libopenapi.NewDocument(r.body)
	if err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return r.body, doc
}

// validateDocument checks doc against the OpenAPI 3.1 schema and every
// example in it against the schema it illustrates.
func validateDocument(t *testing.T, doc libopenapi.Document) *v3.Document {
	t.Helper()
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("invalid OpenAPI: %s: %s (%v)", e.Message, e.Reason, e.SchemaValidationErrors)
		}
		t.FailNow()
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("build model: %v", err)
	}
	sv := schema_validation.NewSchemaValidator(config.WithFormatAssertions())
	check := func(where string, media *v3.MediaType) {
		if media == nil || media.Example == nil || media.Schema == nil {
			return
		}
		var ex any
		if err := media.Example.Decode(&ex); err != nil {
			t.Errorf("%s: example does not decode: %v", where, err)
			return
		}
		raw, _ := json.Marshal(ex)
		if ok, verrs := sv.ValidateSchemaString(media.Schema.Schema(), string(raw)); !ok {
			for _, e := range verrs {
				t.Errorf("%s: example %s does not match its schema: %s %s", where, raw, e.Reason, e.Message)
			}
		}
	}
	examples := 0
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			where := strings.ToUpper(method) + " " + path
			if op.RequestBody != nil {
				for _, m := range op.RequestBody.Content.FromOldest() {
					check(where+" request", m)
					if m.Example != nil {
						examples++
					}
				}
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				if resp.Content == nil {
					continue
				}
				for _, m := range resp.Content.FromOldest() {
					check(where+" "+code, m)
				}
			}
		}
	}
	for name, resp := range model.Model.Components.Responses.FromOldest() {
		for _, m := range resp.Content.FromOldest() {
			check("response "+name, m)
		}
	}
	if examples == 0 {
		t.Error("the document has no request examples")
	}
	return &model.Model
}

// TestOpenAPIDocument: /{slug}/openapi.json is a valid OpenAPI 3.1 document
// of every per-integration endpoint, with examples that match their
// schemas, the request's own base URL as its server, and the webhook
// token's three places and the ElevenLabs signature as security.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	h := setup(t)
	raw, doc := h.openAPIDoc(t, h.integ, nil)
	if doc.GetVersion() != "3.1.0" {
		t.Fatalf("version %q", doc.GetVersion())
	}
	if strings.Contains(string(raw), h.integ.WebhookToken) {
		t.Fatal("the public document shows the webhook token")
	}
	model := validateDocument(t, doc)

	var ops []string
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	want := []string{"POST /webhook/call-originate", "POST /webhook/call-events", "POST /webhook/agent-init", "POST /webhook/agent-postcall",
		"POST /setup", "GET /health", "POST /cron/trigger", "GET /openapi.json", "GET /docs"}
	if !slices.Equal(ops, want) {
		t.Fatalf("operations %v, want %v", ops, want)
	}
	if len(model.Servers) != 1 || model.Servers[0].URL != h.in.URL+"/"+h.integ.Slug {
		t.Fatalf("servers %+v, want %s/%s", model.Servers, h.in.URL, h.integ.Slug)
	}
	schemes := model.Components.SecuritySchemes
	for name, want := range map[string][3]string{
		"webhookToken": {"apiKey", "header", "X-Webhook-Token"}, "queryToken": {"apiKey", "query", "token"},
		"elevenLabsSignature": {"apiKey", "header", "ElevenLabs-Signature"}, "bearerToken": {"http", "", ""},
	} {
		s := schemes.GetOrZero(name)
		if s == nil || s.Type != want[0] || s.In != want[1] || s.Name != want[2] {
			t.Errorf("security scheme %s = %+v, want %v", name, s, want)
		}
	}
	postcall := model.Paths.PathItems.GetOrZero("/webhook/agent-postcall").Post
	if len(postcall.Security) == 0 || postcall.Security[0].ContainsEmptyRequirement ||
		!slices.Equal(slices.Collect(postcall.Security[0].Requirements.KeysFromOldest()), []string{"elevenLabsSignature"}) {
		t.Errorf("agent-postcall security does not start with the ElevenLabs signature")
	}
	if len(model.Security) != 3 {
		t.Errorf("document security %d requirements, want the token's 3 places", len(model.Security))
	}
	originate := model.Paths.PathItems.GetOrZero("/webhook/call-originate").Post
	body := originate.RequestBody.Content.GetOrZero("application/json")
	var ex map[string]any
	if err := body.Example.Decode(&ex); err != nil || ex["phone_number"] == nil {
		t.Errorf("call-originate example %v: %v", ex, err)
	}
	for _, code := range []string{"202", "400", "401", "404", "413", "422", "503"} {
		if originate.Responses.Codes.GetOrZero(code) == nil {
			t.Errorf("call-originate documents no %s", code)
		}
	}

	// Forwarded headers from a client that is not a trusted proxy (none is
	// configured here) do not change where the document sends clients;
	// service.TestTrustedProxies covers a configured proxy.
	_, forged := h.openAPIDoc(t, h.integ, http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"calls.example.com"}})
	fm, err := forged.BuildV3Model()
	if err != nil || fm.Model.Servers[0].URL != h.in.URL+"/"+h.integ.Slug {
		t.Fatalf("servers with forged forwarding headers %+v, %v", fm.Model.Servers, err)
	}
}

// TestOpenAPIMatchesTheService sends every documented request example to
// the real endpoints and validates request and answer against the
// document, so the document describes what the service does.
func TestOpenAPIMatchesTheService(t *testing.T) {
	t.Parallel()
	h := setup(t)
	_, doc := h.openAPIDoc(t, h.integ, nil)
	model := validateDocument(t, doc)
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			var body []byte
			if op.RequestBody != nil {
				if m := op.RequestBody.Content.GetOrZero("application/json"); m != nil && m.Example != nil {
					var ex any
					if err := m.Example.Decode(&ex); err != nil {
						t.Fatal(err)
					}
					body, _ = json.Marshal(ex)
				}
			}
			req, err := http.NewRequest(strings.ToUpper(method), h.in.URL+"/"+h.integ.Slug+path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("X-Webhook-Token", h.integ.WebhookToken)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(raw))
			// The validator reads the request body again.
			req.Body = io.NopCloser(bytes.NewReader(body))
			where := strings.ToUpper(method) + " " + path
			if resp.StatusCode >= 400 && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s with the documented example: %d %s", where, resp.StatusCode, raw)
				continue
			}
			if ok, verrs := v.ValidateHttpRequestResponse(req, resp); !ok {
				for _, e := range verrs {
					t.Errorf("%s: %s: %s %v; answer %.300s", where, e.Message, e.Reason, e.SchemaValidationErrors, raw)
				}
			}
		}
	}
	// The example call was really queued.
	servicetest.Eventually(t, 10*time.Second, "the example call", func() bool { return len(h.calls(t, h.integ.ID)) == 1 })
}

// TestDocsPage: /{slug}/docs is a page that renders ./openapi.json with
// the vendored viewer, nothing loaded from elsewhere and no inline script
// (TestAPIDocsInBrowser in service/ renders it in a browser).
func TestDocsPage(t *testing.T) {
	t.Parallel()
	h := setup(t)
	resp, err := client.Get(h.in.URL + "/" + h.integ.Slug + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("docs: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	html := string(page)
	for _, must := range []string{`data-spec="openapi.json"`, `src="docs/assets/swagger-ui-bundle.js`, h.integ.Slug} {
		if !strings.Contains(html, must) {
			t.Errorf("the page lacks %q", must)
		}
	}
	for _, never := range []string{"<script>", "<style", "http://", "https://", "@import", "cdn"} {
		if strings.Contains(html, never) {
			t.Errorf("the page has %q: inline code or something from elsewhere", never)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q does not keep the page to itself", csp)
	}
	asset, err := client.Get(h.in.URL + "/" + h.integ.Slug + "/docs/assets/swagger-ui-bundle.js")
	if err != nil {
		t.Fatal(err)
	}
	_ = asset.Body.Close()
	if asset.StatusCode != http.StatusOK || asset.Header.Get("ETag") == "" {
		t.Errorf("the viewer's script: %d %v", asset.StatusCode, asset.Header)
	}

	for _, path := range []string{"/no-such-integration/docs", "/no-such-integration/openapi.json"} {
		r := h.send(t, "GET", path, nil, nil)
		if e := r.expectError(t, http.StatusNotFound, ""); e.Code != "not_found" {
			t.Fatalf("%s: code %q", path, e.Code)
		}
	}
}

// TestSetupEndpoint: POST /{slug}/setup fills config defaults, creates
// the empty placeholder secrets and refreshes the status; again, it
// creates nothing. It takes the webhook token like the other endpoints.
func TestSetupEndpoint(t *testing.T) {
	t.Parallel()
	h := setup(t)
	integ := h.admin.CreateIntegration("Setup "+h.integ.Slug, nil, nil)

	for name, hdr := range map[string]http.Header{"no token": nil, "wrong token": {"X-Webhook-Token": {integ.WebhookToken + "x"}},
		"another integration's token": {"X-Webhook-Token": {h.integ.WebhookToken}}} {
		if e := h.send(t, "POST", "/"+integ.Slug+"/setup", hdr, nil).expectError(t, http.StatusUnauthorized, ""); e.Code != "unauthorized" {
			t.Fatalf("%s: code %q", name, e.Code)
		}
	}
	h.send(t, "POST", "/no-such-integration/setup", http.Header{"X-Webhook-Token": {integ.WebhookToken}}, nil).
		expectError(t, http.StatusNotFound, "")
	h.post(t, integ, "setup", []byte(`[1]`)).expectError(t, http.StatusBadRequest, "")
	var secrets []store.Secret
	servicetest.Request(t, "GET", h.in.URL+"/api/integrations/"+integ.ID.String()+"/secrets",
		map[string]string{"Authorization": "Bearer " + h.admin.Token}, nil, &secrets)
	if len(secrets) != 0 {
		t.Fatalf("refused setups created secrets: %+v", secrets)
	}

	type answer struct {
		Success bool     `json:"success"`
		Created []string `json:"created"`
		Status  string   `json:"status"`
	}
	var first answer
	r := h.send(t, "POST", "/"+integ.Slug+"/setup?token="+integ.WebhookToken, nil, nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &first) != nil {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	want := []string{"config:call_handling", "config:voice", "config:crm_fields", "config:crm", "config:agent",
		"secret:VA_AUTH_TOKEN", "secret:ELEVENLABS_WEBHOOK_SECRET", "secret:LLM_API_KEY"}
	if !first.Success || !slices.Equal(first.Created, want) || first.Status != store.StatusNotConfigured {
		t.Fatalf("first setup = %+v, want created %v", first, want)
	}
	var second answer
	r = h.post(t, integ, "setup", []byte(`{}`))
	if r.status != http.StatusOK || json.Unmarshal(r.body, &second) != nil || !second.Success || len(second.Created) != 0 || second.Created == nil {
		t.Fatalf("second setup: %d %s", r.status, r.body)
	}

	servicetest.Request(t, "GET", h.in.URL+"/api/integrations/"+integ.ID.String()+"/secrets",
		map[string]string{"Authorization": "Bearer " + h.admin.Token}, nil, &secrets)
	var keys []string
	for _, s := range secrets {
		keys = append(keys, s.Key)
		if s.ValuePreview != "" {
			t.Errorf("placeholder %s shows %q", s.Key, s.ValuePreview)
		}
	}
	if !slices.Equal(keys, []string{"ELEVENLABS_WEBHOOK_SECRET", "LLM_API_KEY", "VA_AUTH_TOKEN"}) {
		t.Fatalf("secrets after setup %v", keys)
	}
	// An empty ELEVENLABS_WEBHOOK_SECRET is no secret: agent-postcall still
	// takes the webhook token.
	if r := h.post(t, integ, "webhook/agent-postcall",
		[]byte(`{"type":"call_initiation_failure","data":{"conversation_id":"conv-setup-2","failure_reason":"busy"}}`)); r.status != http.StatusOK {
		t.Fatalf("agent-postcall after setup: %d %s", r.status, r.body)
	}
	// An empty VA_AUTH_TOKEN is not a configured dialler: health says so.
	var health struct {
		Checks map[string]map[string]any `json:"checks"`
	}
	r = h.send(t, "GET", "/"+integ.Slug+"/health", http.Header{"X-Webhook-Token": {integ.WebhookToken}}, nil)
	if err := json.Unmarshal(r.body, &health); err != nil || r.status != http.StatusServiceUnavailable || health.Checks["voice"]["secret"] != false {
		t.Fatalf("health after setup: %d %s", r.status, r.body)
	}

	// Setup of a configured integration makes it active.
	var cfg map[string]any
	servicetest.Request(t, "PUT", h.in.URL+"/api/integrations/"+integ.ID.String()+"/config/voice",
		map[string]string{"Authorization": "Bearer " + h.admin.Token},
		map[string]any{"provider": "va", "base_url": h.va.URL, "sip_id": "sip-1", "assistant_id": "asst-1"}, &cfg)
	servicetest.Request(t, "POST", h.in.URL+"/api/core/secrets", map[string]string{"Authorization": "Bearer " + h.admin.Token},
		map[string]any{"integration": integ.Slug, "key": "VA_AUTH_TOKEN", "value": servicetest.FakeVAToken}, nil)
	var third answer
	r = h.post(t, integ, "setup", nil)
	if json.Unmarshal(r.body, &third) != nil || third.Status != store.StatusActive || len(third.Created) != 0 {
		t.Fatalf("setup of a configured integration: %d %s", r.status, r.body)
	}
}
