package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/api"
	"github.com/callqueue/callqueue/store"
)

// registeredPatterns walks the ServeMux that api.Register fills and returns
// every pattern in it. net/http has no public walk, so this reads the mux's
// routing tree by reflection; if the tree's shape ever changes the walk
// finds nothing and TestEveryRouteHasARow says so, rather than passing.
func registeredPatterns(t testing.TB) []string {
	t.Helper()
	mux := http.NewServeMux()
	api.New(api.Deps{}).Register(mux)
	seen := map[string]bool{}
	var walk func(n reflect.Value)
	walk = func(n reflect.Value) {
		if !n.IsValid() || n.Kind() != reflect.Struct {
			return
		}
		if p := n.FieldByName("pattern"); p.IsValid() && !p.IsNil() {
			if s := p.Elem().FieldByName("str"); s.IsValid() {
				seen[s.String()] = true
			}
		}
		children := n.FieldByName("children")
		if children.IsValid() {
			if s := children.FieldByName("s"); s.IsValid() {
				for i := range s.Len() {
					if v := s.Index(i).FieldByName("value"); v.IsValid() && !v.IsNil() {
						walk(v.Elem())
					}
				}
			}
			if m := children.FieldByName("m"); m.IsValid() {
				for it := m.MapRange(); it.Next(); {
					if !it.Value().IsNil() {
						walk(it.Value().Elem())
					}
				}
			}
		}
		for _, name := range []string{"multiChild", "emptyChild"} {
			if c := n.FieldByName(name); c.IsValid() && !c.IsNil() {
				walk(c.Elem())
			}
		}
	}
	walk(reflect.ValueOf(mux).Elem().FieldByName("tree"))
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// routeFixture is owner A's world that every row of the table probes: one
// integration (not configured, so its call stays queued and nothing moves
// by itself) with config, a secret, a credential and a call.
type routeFixture struct {
	*world
	integ        store.Integration
	secretID     uuid.UUID
	credentialID uuid.UUID
	callID       uuid.UUID
	revoked      string
	// probe is a live token of A's, the target of DELETE /api/tokens/{id}.
	probe      string
	probeToken uuid.UUID
	// handlerID is A's handler "call-originate".
	handlerID uuid.UUID
	// campaignID is A's campaign, with one recipient; suppressed is a
	// number A suppressed for the integration.
	campaignID uuid.UUID
	suppressed string
}

func newRouteFixture(t *testing.T) *routeFixture {
	t.Helper()
	w := setup(t)
	fx := &routeFixture{world: w}
	fx.integ = createIntegration(t, w.a, map[string]any{"name": "Route target", "agentPrompt": "Keep me"})
	w.a.do(t, "PUT", integrationPath(fx.integ, "/config/call_handling"), map[string]any{"concurrency_limit": 2}).expect(t, http.StatusOK)
	fx.secretID = addSecret(t, w.a, fx.integ, "secrets", "ROUTE_SECRET", "route-secret-value").ID
	fx.credentialID = addSecret(t, w.a, fx.integ, "credentials", "ROUTE_CREDENTIAL", "route-credential-value").ID
	fx.callID = w.originate(t, w.a, fx.integ, "+380997770001")
	fx.integ = getIntegration(t, w.a, fx.integ)

	tok, plain, err := w.env.Store.CreateToken(context.Background(), ownerA, store.ActorCLI, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.env.Store.RevokeToken(context.Background(), ownerA, store.ActorCLI, tok.ID); err != nil {
		t.Fatal(err)
	}
	fx.revoked = plain
	probe, plain, err := w.env.Store.CreateToken(context.Background(), ownerA, store.ActorCLI, "probe")
	if err != nil {
		t.Fatal(err)
	}
	fx.probe, fx.probeToken = plain, probe.ID
	fx.handlerID = decodeAs[store.Handler](t, w.a.do(t, "POST", "/api/handlers", map[string]any{"integrationId": fx.integ.ID,
		"name": "call-originate", "defaultArgs": map[string]any{"dynamic_variables": map[string]any{"source": "routes"}}}).
		expect(t, http.StatusCreated)).ID
	fx.campaignID = decodeAs[store.Campaign](t, w.a.do(t, "POST", integrationPath(fx.integ, "/campaigns"), map[string]any{
		"name": "Route campaign", "recipients": []map[string]any{{"phoneNumber": "+380997770002"}}}).expect(t, http.StatusCreated)).ID
	fx.suppressed = "+380997770003"
	w.a.do(t, "POST", integrationPath(fx.integ, "/suppressions"), map[string]any{"phoneNumber": fx.suppressed}).expect(t, http.StatusCreated)
	return fx
}

// target turns a pattern into a request path at the fixture's resources.
func (fx *routeFixture) target(pattern string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	id := fx.integ.ID.String()
	if strings.HasPrefix(path, "/api/calls/") {
		id = fx.callID.String()
	}
	if strings.HasPrefix(path, "/api/tokens/") {
		id = fx.probeToken.String()
	}
	if strings.HasPrefix(path, "/api/handlers/") {
		id = fx.handlerID.String()
	}
	if strings.HasPrefix(path, "/api/campaigns/") {
		id = fx.campaignID.String()
	}
	secretID := fx.secretID.String()
	if strings.Contains(path, "/credentials/") {
		secretID = fx.credentialID.String()
	}
	path = strings.NewReplacer("{id}", id, "{secretId}", secretID, "{key}", "call_handling",
		"{handlerId}", fx.handlerID.String(), "{file}", "page.js", "{phone}", url.PathEscape(fx.suppressed)).Replace(path)
	return method, path
}

// snapshot is everything owner A can see; a request that fails must leave
// it exactly as it was.
func (fx *routeFixture) snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, path := range []string{
		integrationPath(fx.integ), integrationPath(fx.integ, "/config"), integrationPath(fx.integ, "/secrets"),
		integrationPath(fx.integ, "/credentials"), integrationPath(fx.integ, "/stats"), "/api/calls/" + fx.callID.String(),
		"/api/integrations", "/api/calls", integrationPath(fx.integ, "/audit-logs"), "/api/audit-logs",
		integrationPath(fx.integ, "/handlers"),
	} {
		r := fx.a.do(t, "GET", path, nil).expect(t, http.StatusOK)
		fmt.Fprintf(&b, "%s %s %s\n", path, r.header.Get("X-Total-Count"), r.body)
	}
	return b.String()
}

// bodyCase is a request that must be refused. body and query may be
// func(*routeFixture) values, resolved against the fixture.
type bodyCase struct {
	name  string
	query any
	body  any
	field string
}

func resolve(fx *routeFixture, v any) any {
	switch f := v.(type) {
	case func(*routeFixture) any:
		return f(fx)
	case func(*routeFixture) string:
		return f(fx)
	}
	return v
}

// routeRow is what the table knows about one registered route.
type routeRow struct {
	pattern string
	// query is added to every request of the row.
	query func(*routeFixture) string
	// body is a valid body: requests without a good token carry it, so a
	// 401 cannot come from the body.
	body any
	// other checks owner B's request at A's resource; nil means a 404.
	other func(t *testing.T, fx *routeFixture, r response)
	// otherBody replaces body for owner B's request.
	otherBody any
	bad       []bodyCase // 400
	invalid   []bodyCase // 422
	// public routes need no token (GET /api/openapi.json).
	public bool
}

func (row routeRow) readsBody() bool { return row.body != nil }

// Bodies that no endpoint reading JSON may accept.
var unreadableBodies = []bodyCase{
	{name: "malformed", body: `{"key": `},
	{name: "not an object", body: `[1, 2]`},
	{name: "empty", body: ``},
	{name: "two values", body: `{} {}`},
}

func integrationBodyCases(extra ...bodyCase) []bodyCase {
	return append([]bodyCase{
		{name: "name of the wrong type", body: `{"name": 5}`, field: "name"},
		{name: "status of the wrong type", body: `{"name": "x", "status": 1}`, field: "status"},
		{name: "unknown field", body: `{"name": "x", "nickname": "y"}`, field: "nickname"},
	}, extra...)
}

func secretBodyCases() []bodyCase {
	return []bodyCase{
		{name: "key of the wrong type", body: `{"key": 1, "value": "v"}`, field: "key"},
		{name: "value of the wrong type", body: `{"key": "K", "value": {"v": 1}}`, field: "value"},
		{name: "unknown field", body: `{"key": "K", "value": "v", "note": "x"}`, field: "note"},
		{name: "integration outside /api/core/secrets", body: `{"integration": "x", "key": "K", "value": "v"}`, field: "integration"},
	}
}

func secretInvalidCases() []bodyCase {
	return []bodyCase{
		{name: "no key", body: map[string]any{"value": "v"}, field: "key"},
		{name: "key with a space", body: map[string]any{"key": "BAD KEY", "value": "v"}, field: "key"},
		{name: "key too long", body: map[string]any{"key": strings.Repeat("K", 129), "value": "v"}, field: "key"},
		{name: "no value", body: map[string]any{"key": "K"}, field: "value"},
		{name: "value too long", body: map[string]any{"key": "K", "value": strings.Repeat("v", 64<<10+1)}, field: "value"},
	}
}

// expectEmptyList checks an owner-B list answer shows none of A's things.
func expectEmptyList(t *testing.T, _ *routeFixture, r response) {
	t.Helper()
	r.expect(t, http.StatusOK)
	if strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("another owner's list = %s, want []", r.body)
	}
}

func handlerBodyCases() []bodyCase {
	return []bodyCase{
		{name: "name of the wrong type", body: `{"name": 5}`, field: "name"},
		{name: "integrationId of the wrong type", body: `{"integrationId": 5, "name": "x"}`, field: "integrationId"},
		{name: "unknown field", body: `{"name": "x", "args": {}}`, field: "args"},
	}
}

func handlerInvalidCases() []bodyCase {
	return []bodyCase{
		{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
		{name: "name with a space", body: map[string]any{"name": "order created"}, field: "name"},
		{name: "defaultArgs not an object", body: map[string]any{"name": "x", "defaultArgs": []int{1}}, field: "defaultArgs"},
	}
}

func pageCases() []bodyCase {
	return []bodyCase{
		{name: "limit zero", query: "limit=0", field: "limit"},
		{name: "limit not a number", query: "limit=many", field: "limit"},
		{name: "offset negative", query: "offset=-1", field: "offset"},
	}
}

// expectNoneOfA checks an owner-B answer about B's own things (its audit
// log, its tokens) names nothing of A's.
func expectNoneOfA(t *testing.T, fx *routeFixture, r response) {
	t.Helper()
	r.expect(t, http.StatusOK)
	for _, a := range []string{fx.integ.ID.String(), fx.probeToken.String(), `"` + ownerA + `"`} {
		if strings.Contains(string(r.body), a) {
			t.Errorf("another owner's answer names %s of A's: %s", a, r.body)
		}
	}
}

func routeTable() []routeRow {
	rows := []routeRow{
		{
			pattern: "GET /api/integrations",
			other:   expectEmptyList,
			bad: []bodyCase{
				{name: "order", query: "order=slug", field: "order"},
				{name: "limit zero", query: "limit=0", field: "limit"},
				{name: "limit not a number", query: "limit=many", field: "limit"},
				{name: "offset negative", query: "offset=-1", field: "offset"},
			},
		},
		{
			pattern: "POST /api/integrations",
			body:    map[string]any{"name": "Route probe"},
			// B may create integrations of its own; the slug namespace is
			// shared, so A's slug is taken for B too.
			otherBody: func(fx *routeFixture) any { return map[string]any{"name": "B probe", "slug": fx.integ.Slug} },
			other: func(t *testing.T, _ *routeFixture, r response) {
				expectFieldError(t, r, http.StatusConflict, "slug")
			},
			bad: integrationBodyCases(),
			invalid: []bodyCase{
				{name: "no name", body: map[string]any{"agentPrompt": "x"}, field: "name"},
				{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
				{name: "name too long", body: map[string]any{"name": strings.Repeat("n", 201)}, field: "name"},
				{name: "slug shape", body: map[string]any{"name": "x", "slug": "Not A Slug"}, field: "slug"},
				{name: "reserved slug", body: map[string]any{"name": "x", "slug": "api"}, field: "slug"},
				{name: "phone too long", body: map[string]any{"name": "x", "phoneNumber": strings.Repeat("1", 51)}, field: "phoneNumber"},
				{name: "unknown status", body: map[string]any{"name": "x", "status": "failed"}, field: "status"},
			},
		},
		{pattern: "GET /api/integrations/{id}"},
		{
			pattern: "PATCH /api/integrations/{id}",
			body:    map[string]any{"agentPrompt": "Changed by a stranger"},
			bad:     integrationBodyCases(),
			invalid: []bodyCase{
				{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
				{name: "reserved slug", body: map[string]any{"slug": "metrics"}, field: "slug"},
				{name: "status", body: map[string]any{"status": "has_errors"}, field: "status"},
				{name: "sip id too long", body: map[string]any{"voiceAssistantSipId": strings.Repeat("s", 51)}, field: "voiceAssistantSipId"},
			},
		},
		{
			pattern: "PUT /api/integrations/{id}",
			body:    map[string]any{"name": "Replaced by a stranger"},
			bad:     integrationBodyCases(),
			invalid: []bodyCase{
				{name: "no name", body: map[string]any{"agentPrompt": "x"}, field: "name"},
				{name: "status", body: map[string]any{"name": "x", "status": "not_configured"}, field: "status"},
			},
		},
		{pattern: "DELETE /api/integrations/{id}"},
		{pattern: "POST /api/integrations/{id}/rotate-webhook-token"},
		{pattern: "GET /api/integrations/{id}/config"},
		{pattern: "GET /api/integrations/{id}/config/{key}"},
		{
			pattern: "PUT /api/integrations/{id}/config/{key}",
			body:    map[string]any{"concurrency_limit": 7},
			bad: []bodyCase{
				{name: "wrong type", body: `{"concurrency_limit": "7"}`, field: "concurrency_limit"},
				{name: "unknown field", body: `{"concurrency": 7}`, field: "concurrency"},
				{name: "unknown nested field", body: `{"calling_window": {"timezone": "Europe/Kyiv", "start": "09:00", "end": "20:00", "hours": 3}}`,
					field: "calling_window.hours"},
			},
			invalid: []bodyCase{
				{name: "concurrency limit zero", body: map[string]any{"concurrency_limit": 0}, field: "concurrency_limit"},
				{name: "max attempts", body: map[string]any{"max_attempts": 101}, field: "max_attempts"},
			},
		},
		{pattern: "DELETE /api/integrations/{id}/config/{key}"},
		{pattern: "GET /api/integrations/{id}/crm/fields"},
		{pattern: "GET /api/integrations/{id}/stats"},
		{pattern: "GET /api/integrations/{id}/timeseries", bad: timeseriesCases()},
		{
			pattern: "POST /api/core/secrets",
			body: func(fx *routeFixture) any {
				return map[string]any{"integration": fx.integ.Slug, "key": "CORE_KEY", "value": "core-value"}
			},
			other: func(t *testing.T, _ *routeFixture, r response) {
				expectFieldError(t, r, http.StatusNotFound, "integration")
			},
			bad: []bodyCase{
				{name: "integration of the wrong type", body: `{"integration": 1, "key": "K", "value": "v"}`, field: "integration"},
				{name: "unknown field", body: `{"integration": "x", "key": "K", "value": "v", "kind": "secret"}`, field: "kind"},
			},
			invalid: []bodyCase{
				{name: "no integration", body: map[string]any{"key": "K", "value": "v"}, field: "integration"},
				{name: "bad key", body: func(fx *routeFixture) any {
					return map[string]any{"integration": fx.integ.Slug, "key": "a b", "value": "v"}
				}, field: "key"},
				{name: "no value", body: func(fx *routeFixture) any { return map[string]any{"integration": fx.integ.Slug, "key": "K"} }, field: "value"},
			},
		},
		{
			pattern: "GET /api/core/secrets",
			query:   func(fx *routeFixture) string { return "integration=" + fx.integ.Slug },
			other: func(t *testing.T, _ *routeFixture, r response) {
				expectFieldError(t, r, http.StatusNotFound, "integration")
			},
		},
		{
			pattern: "GET /api/calls",
			other:   expectEmptyList,
			bad: []bodyCase{
				{name: "status", query: "status=ringing", field: "status"},
				{name: "integrationId", query: "integrationId=42", field: "integrationId"},
				{name: "order", query: "order=phone", field: "order"},
				{name: "limit", query: "limit=1001", field: "limit"},
				{name: "createdTo", query: "createdTo=2026-13-01", field: "createdTo"},
			},
		},
		{pattern: "GET /api/calls/{id}"},
		{pattern: "POST /api/calls/{id}/cancel"},
		{pattern: "GET /api/integrations/{id}/audit-logs", bad: pageCases()},
		{
			pattern: "GET /api/audit-logs",
			other:   expectNoneOfA,
			bad:     pageCases(),
		},
		{pattern: "GET /api/tokens", other: expectNoneOfA},
		{
			pattern: "GET /api/dead-letters",
			other:   expectEmptyList,
			bad: append(pageCases()[:2],
				bodyCase{name: "after not a number", query: "after=last", field: "after"},
				bodyCase{name: "integrationId not a uuid", query: "integrationId=x", field: "integrationId"}),
			invalid: []bodyCase{{name: "unknown stream", query: "stream=kafka", field: "stream"}},
		},
		{
			pattern:   "POST /api/dead-letters/replay",
			body:      map[string]any{"all": true},
			otherBody: map[string]any{"seq": 1},
			bad: []bodyCase{
				{name: "seq of the wrong type", body: `{"seq": "7"}`, field: "seq"},
				{name: "unknown field", body: `{"seq": 7, "force": true}`, field: "force"},
			},
			invalid: []bodyCase{
				{name: "neither seq nor all", body: map[string]any{}, field: "seq"},
				{name: "seq and all", body: map[string]any{"seq": 1, "all": true}, field: "all"},
				{name: "seq with a filter", body: map[string]any{"seq": 1, "stream": "events"}, field: "seq"},
				{name: "unknown stream", body: map[string]any{"all": true, "stream": "kafka"}, field: "stream"},
			},
		},
		{pattern: "GET " + api.OpenAPIPath, public: true},
		{pattern: "GET " + api.DocsPath, public: true},
		{pattern: "GET " + api.DocsPath + "/assets/{file}", public: true},
		{
			pattern: "GET /api/handlers",
			other:   expectEmptyList,
			bad:     []bodyCase{{name: "integrationId", query: "integrationId=42", field: "integrationId"}},
		},
		{
			pattern: "POST /api/handlers",
			body: func(fx *routeFixture) any {
				return map[string]any{"integrationId": fx.integ.ID, "name": "probe-handler", "defaultArgs": map[string]any{}}
			},
			bad: handlerBodyCases(),
			invalid: append(handlerInvalidCases(), []bodyCase{
				{name: "no integrationId", body: map[string]any{"name": "probe"}, field: "integrationId"},
				{name: "integrationId not a uuid", body: map[string]any{"integrationId": "42", "name": "probe"}, field: "integrationId"},
				{name: "no name", body: func(fx *routeFixture) any { return map[string]any{"integrationId": fx.integ.ID} }, field: "name"},
			}...),
		},
		{pattern: "GET /api/handlers/{id}"},
		{
			pattern: "PATCH /api/handlers/{id}",
			body:    map[string]any{"defaultArgs": map[string]any{"changed": "by a stranger"}},
			bad:     handlerBodyCases(),
			invalid: handlerInvalidCases(),
		},
		{pattern: "DELETE /api/handlers/{id}"},
		{
			pattern: "POST /api/handlers/{id}/invoke",
			body:    map[string]any{"args": map[string]any{"phone_number": "+380997770009"}},
			bad: []bodyCase{
				{name: "unknown field", body: `{"arguments": {}}`, field: "arguments"},
			},
			invalid: []bodyCase{
				{name: "args not an object", body: map[string]any{"args": []int{1}}, field: "args"},
				{name: "args a string", body: map[string]any{"args": "+380997770009"}, field: "args"},
				{name: "the built-in refuses a value", body: map[string]any{"args": map[string]any{"phone_number": "call me"}}, field: "args.phone_number"},
				{name: "the built-in misses a value", body: map[string]any{"args": map[string]any{}}, field: "args.phone_number"},
			},
		},
		{pattern: "GET /api/integrations/{id}/handlers"},
		{
			pattern: "POST /api/integrations/{id}/handlers",
			body:    map[string]any{"name": "probe-handler", "defaultArgs": map[string]any{"timeout": 5000}},
			bad:     handlerBodyCases(),
			invalid: append(handlerInvalidCases(), bodyCase{name: "no name", body: map[string]any{"defaultArgs": map[string]any{}}, field: "name"}),
		},
		{
			pattern: "PUT /api/integrations/{id}/handlers/{handlerId}",
			body:    map[string]any{"name": "renamed-by-a-stranger"},
			bad:     handlerBodyCases(),
			invalid: handlerInvalidCases(),
		},
		{pattern: "DELETE /api/integrations/{id}/handlers/{handlerId}"},
		{
			pattern: "POST /api/integrations/{id}/sync-handlers",
			body:    func(fx *routeFixture) any { return map[string]any{"integrationName": fx.integ.Slug} },
			bad: []bodyCase{
				{name: "integrationName of the wrong type", body: `{"integrationName": 1}`, field: "integrationName"},
				{name: "baseUrl of the wrong type", body: `{"integrationName": "x", "baseUrl": ["http://x"]}`, field: "baseUrl"},
				{name: "unknown field", body: `{"integrationName": "x", "url": "http://x"}`, field: "url"},
			},
			invalid: []bodyCase{
				{name: "no integrationName", body: map[string]any{"baseUrl": "http://127.0.0.1:1"}, field: "integrationName"},
				{name: "integrationName with a slash", body: map[string]any{"integrationName": "a/b"}, field: "integrationName"},
				{name: "baseUrl not http", body: map[string]any{"integrationName": "x", "baseUrl": "ftp://127.0.0.1/"}, field: "baseUrl"},
				{name: "baseUrl relative", body: map[string]any{"integrationName": "x", "baseUrl": "/local"}, field: "baseUrl"},
			},
		},
		{
			pattern: "DELETE /api/tokens/{id}",
			other: func(t *testing.T, fx *routeFixture, r response) {
				t.Helper()
				expectError(t, r, http.StatusNotFound)
				client{base: fx.inst.URL, token: fx.probe}.do(t, "GET", "/api/tokens", nil).expect(t, http.StatusOK)
			},
		},
	}
	rows = append(rows, campaignRows()...)
	// A person within A's integration: owner B is refused, and nothing is erased.
	inA := func(fx *routeFixture) string { return "integrationId=" + fx.integ.ID.String() }
	rows = append(rows, routeRow{pattern: "GET /api/people/{phone}", query: inA}, routeRow{pattern: "DELETE /api/people/{phone}", query: inA})
	for _, kind := range []string{"secrets", "credentials"} {
		base := "/api/integrations/{id}/" + kind
		rows = append(rows,
			routeRow{pattern: "GET " + base},
			routeRow{pattern: "POST " + base, body: map[string]any{"key": "STRANGER", "value": "v"},
				bad: secretBodyCases(), invalid: secretInvalidCases()},
			routeRow{pattern: "PUT " + base + "/{secretId}", body: map[string]any{"key": "ROUTE_RENAMED", "value": "changed"},
				bad: secretBodyCases(), invalid: secretInvalidCases()},
			routeRow{pattern: "DELETE " + base + "/{secretId}"},
		)
	}
	return rows
}

// TestEveryRouteHasARow fails when a route is registered without a row in
// the table below (or a row names a route that no longer exists).
func TestEveryRouteHasARow(t *testing.T) {
	t.Parallel()
	registered := registeredPatterns(t)
	if !slices.Contains(registered, "GET /api/integrations") {
		t.Fatalf("the ServeMux walk found %q: net/http's routing tree changed, update registeredPatterns", registered)
	}
	var rows []string
	for _, row := range routeTable() {
		if slices.Contains(rows, row.pattern) {
			t.Errorf("two rows for %s", row.pattern)
		}
		rows = append(rows, row.pattern)
	}
	for _, p := range registered {
		if !slices.Contains(rows, p) {
			t.Errorf("route %q is registered but has no row in routeTable", p)
		}
	}
	for _, p := range rows {
		if !slices.Contains(registered, p) {
			t.Errorf("routeTable has a row for %q, which is not registered", p)
		}
	}
}

// TestRoutes runs every route through the failures every route must handle
// the same way: authentication, ownership, missing resources, bodies it
// cannot read and values it refuses, all answered in the contract's error
// shape and changing nothing.
func TestRoutes(t *testing.T) {
	t.Parallel()
	fx := newRouteFixture(t)
	before := fx.snapshot(t)
	badTokens := map[string]string{
		"no Authorization":   "",
		"empty bearer":       "Bearer ",
		"basic scheme":       "Basic b3duZXItYTpwYXNz",
		"token without type": fx.a.token,
		"unknown token":      "Bearer cq_" + strings.Repeat("x", 43),
		"revoked token":      "Bearer " + fx.revoked,
		"token with a typo":  "Bearer " + fx.a.token + "x",
	}

	// The group returns once every parallel row has finished.
	t.Run("rows", func(t *testing.T) {
		for _, row := range routeTable() {
			runRoute(t, fx, row, before, badTokens)
		}
	})
	if after := fx.snapshot(t); after != before {
		t.Errorf("refused requests changed owner A's data:\n%s\nwas\n%s", after, before)
	}
}

func runRoute(t *testing.T, fx *routeFixture, row routeRow, before string, badTokens map[string]string) {
	t.Run(row.pattern, func(t *testing.T) {
		t.Parallel()
		method, path := fx.target(row.pattern)
		withQuery := func(path string, extra any) string {
			var q []string
			if row.query != nil {
				q = append(q, row.query(fx))
			}
			if extra != nil {
				q = append(q, resolve(fx, extra).(string))
			}
			if len(q) == 0 {
				return path
			}
			return path + "?" + strings.Join(q, "&")
		}
		body := resolve(fx, row.body)
		checkUnchanged := func(t *testing.T, after string) {
			t.Helper()
			if got := fx.snapshot(t); got != before {
				t.Fatalf("%s changed owner A's data:\n%s\nwas\n%s", after, got, before)
			}
		}

		if row.public {
			t.Run("200 without a token", func(t *testing.T) {
				send(t, method, fx.inst.URL+withQuery(path, nil), nil, nil).expect(t, http.StatusOK)
				checkUnchanged(t, "a request without a token")
			})
			return
		}

		t.Run("401 without a valid token", func(t *testing.T) {
			for name, auth := range badTokens {
				h := map[string]string{}
				if auth != "" {
					h["Authorization"] = auth
				}
				r := send(t, method, fx.inst.URL+withQuery(path, nil), h, body)
				if e := expectError(t, r, http.StatusUnauthorized); e.Code != "unauthorized" {
					t.Errorf("%s: code %q", name, e.Code)
				}
			}
			checkUnchanged(t, "requests without a valid token")
		})

		t.Run("another owner", func(t *testing.T) {
			otherBody := body
			if row.otherBody != nil {
				otherBody = resolve(fx, row.otherBody)
			}
			r := fx.b.do(t, method, withQuery(path, nil), otherBody)
			if row.other != nil {
				row.other(t, fx, r)
			} else if e := expectError(t, r, http.StatusNotFound); e.Code != "not_found" {
				t.Errorf("code %q, want not_found", e.Code)
			}
			if strings.Contains(string(r.body), fx.integ.WebhookToken) || strings.Contains(string(r.body), fx.callID.String()) {
				t.Errorf("another owner's answer leaks A's data: %s", r.body)
			}
			checkUnchanged(t, "owner B's request")
		})

		if strings.Contains(row.pattern, "{") {
			t.Run("404 for what does not exist", func(t *testing.T) {
				for _, wildcard := range []string{"{id}", "{secretId}", "{handlerId}"} {
					if !strings.Contains(row.pattern, wildcard) {
						continue
					}
					for _, missing := range []string{uuid.NewString(), "not-a-uuid"} {
						_, p := fx.target(strings.Replace(row.pattern, wildcard, missing, 1))
						expectError(t, fx.a.do(t, method, withQuery(p, nil), body), http.StatusNotFound)
					}
				}
				if strings.Contains(row.pattern, "/secrets/{secretId}") || strings.Contains(row.pattern, "/credentials/{secretId}") {
					// A secret is not a credential, and the other way round.
					swapped := strings.NewReplacer("/secrets/", "/credentials/", "/credentials/", "/secrets/").Replace(row.pattern)
					_, wrongKind := fx.target(swapped)
					wrongKind = strings.NewReplacer("/secrets/", "/credentials/", "/credentials/", "/secrets/").Replace(wrongKind)
					expectError(t, fx.a.do(t, method, wrongKind, body), http.StatusNotFound)
				}
				if method == "GET" && strings.Contains(row.pattern, "{key}") {
					p := strings.Replace(path, "/call_handling", "/never_set", 1)
					expectError(t, fx.a.do(t, method, p, nil), http.StatusNotFound)
				}
			})
		}

		for _, c := range row.bad {
			t.Run("400 "+c.name, func(t *testing.T) {
				expectFieldError(t, fx.a.do(t, method, withQuery(path, c.query), resolve(fx, c.body)), http.StatusBadRequest, c.field)
			})
		}
		if row.readsBody() {
			for _, c := range unreadableBodies {
				t.Run("400 "+c.name, func(t *testing.T) {
					expectFieldError(t, fx.a.do(t, method, withQuery(path, nil), c.body), http.StatusBadRequest, "")
				})
			}
			t.Run("413 body over 1 MiB", func(t *testing.T) {
				huge := `{"name": "` + strings.Repeat("x", 1<<20) + `"}`
				if e := expectError(t, fx.a.do(t, method, withQuery(path, nil), huge), http.StatusRequestEntityTooLarge); e.Code != "body_too_large" {
					t.Errorf("code %q", e.Code)
				}
			})
		}
		for _, c := range row.invalid {
			t.Run("422 "+c.name, func(t *testing.T) {
				expectFieldError(t, fx.a.do(t, method, withQuery(path, c.query), resolve(fx, c.body)), http.StatusUnprocessableEntity, c.field)
			})
		}
		if row.readsBody() && len(row.bad) == 0 {
			t.Errorf("%s reads a body but its row has no bad-body cases", row.pattern)
		}
		checkUnchanged(t, "the refused requests of "+row.pattern)
	})
}
