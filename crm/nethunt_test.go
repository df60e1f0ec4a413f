package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
)

const (
	nhEmail  = "ops@example.com"
	nhKey    = "nh-api-key"
	nhFolder = "5f1b2c3d4e5f6a7b8c9d0e1f"
	nhPath   = "/api/v1/zapier"
	phone    = "+380991234567"
)

// nhAnswer is how the fake answers one NetHunt endpoint.
type nhAnswer struct {
	status int
	body   string
}

// fakeNetHunt is NetHunt's Zapier API as far as callqueue uses it. It
// answers 401 to wrong credentials and 404/405 to anything callqueue should
// not be calling, as NetHunt would, and fails the test for the latter.
type fakeNetHunt struct {
	recorder
	srv *httptest.Server
	// answers by endpoint: "find-record", "update-record", "create-comment".
	answers map[string]nhAnswer
}

func newFakeNetHunt(t *testing.T, answers map[string]nhAnswer) *fakeNetHunt {
	t.Helper()
	f := &fakeNetHunt{answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := f.record(r)
		if email, key, ok := r.BasicAuth(); !ok || email != nhEmail || key != nhKey {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"message":"Unauthorized"}`)
			return
		}
		kind, method := "", ""
		switch {
		case req.Path == nhPath+"/searches/find-record/"+nhFolder:
			kind, method = "find-record", http.MethodGet
		case strings.HasPrefix(req.Path, nhPath+"/actions/update-record/"):
			kind, method = "update-record", http.MethodPost
		case strings.HasPrefix(req.Path, nhPath+"/actions/create-comment/"):
			kind, method = "create-comment", http.MethodPost
		}
		if kind != "" && r.Method != method {
			t.Errorf("%s with %s, want %s", kind, r.Method, method)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if method == http.MethodPost {
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s with Content-Type %q", kind, ct)
			}
			if !json.Valid([]byte(req.Body)) {
				t.Errorf("%s body is not JSON: %q", kind, req.Body)
			}
		}
		a, known := f.answers[kind]
		if !known {
			t.Errorf("unexpected request %s %s", r.Method, req.Path)
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// client returns the adapter for the fake, built through crm.New.
func (f *fakeNetHunt) client(t *testing.T, fields config.CRMFields, apiKey string) crm.Client {
	t.Helper()
	c, err := crm.New(config.CRM{Kind: "nethunt", FolderID: nhFolder, BaseURL: f.srv.URL + nhPath},
		fields, map[string]string{crm.SecretNetHuntEmail: nhEmail, crm.SecretNetHuntAPIKey: apiKey}, f.srv.Client())
	if err != nil {
		t.Fatalf("crm.New: %v", err)
	}
	return c
}

// findQuery is the exact query string of a find-record for phone by field:
// the value is `"<field>":<phone>`, percent-encoded so "+" survives.
func findQuery(field string) string {
	return "limit=1&query=" + url.QueryEscape(`"`+field+`":`+phone)
}

const nhRecord = `[{"id":"rec-1","name":"Іван Петренко","createdAt":"2026-01-20T10:00:00Z",
	"fields":{"Phone":["+380991234567"],"Name":"Іван","Company":"ТОВ Ромашка","Source":"webinar","Status":"New",
	"Телефон":"+380991234567","Статус":"Новий"}}]`

func TestNetHuntLookup(t *testing.T) {
	t.Parallel()
	ukrainianFields := config.CRMFields{"phone": "Телефон", "name": "Ім'я", "status": "Статус"}
	tests := []struct {
		name      string
		fields    config.CRMFields
		apiKey    string
		find      nhAnswer
		want      *crm.Record
		wantQuery string
		outcome   outcome
		status    int // of the PermanentError
	}{
		{
			name: "found", find: nhAnswer{200, nhRecord}, wantQuery: findQuery("Phone"),
			want: &crm.Record{ID: "rec-1", Name: "Іван Петренко", Fields: map[string]any{
				"Phone": []any{"+380991234567"}, "Name": "Іван", "Company": "ТОВ Ромашка", "Source": "webinar", "Status": "New",
				"Телефон": "+380991234567", "Статус": "Новий",
			}},
		},
		{
			name: "renamed phone field", fields: ukrainianFields, find: nhAnswer{200, `[{"id":"rec-2","name":"Олена","fields":{}}]`},
			wantQuery: findQuery("Телефон"), want: &crm.Record{ID: "rec-2", Name: "Олена", Fields: map[string]any{}},
		},
		{name: "not found", find: nhAnswer{200, `[]`}, wantQuery: findQuery("Phone")},
		{name: "server error", find: nhAnswer{500, `{"message":"Internal error"}`}, wantQuery: findQuery("Phone"), outcome: retryable},
		{name: "unavailable", find: nhAnswer{503, ``}, wantQuery: findQuery("Phone"), outcome: retryable},
		{name: "rate limited", find: nhAnswer{429, `{"message":"Too many requests"}`}, wantQuery: findQuery("Phone"), outcome: retryable},
		{name: "request timeout", find: nhAnswer{408, ``}, wantQuery: findQuery("Phone"), outcome: retryable},
		{name: "unauthorized", find: nhAnswer{401, `{"message":"Unauthorized"}`}, wantQuery: findQuery("Phone"), outcome: permanent, status: 401},
		{name: "wrong api key", apiKey: "stale-key", find: nhAnswer{200, nhRecord}, wantQuery: findQuery("Phone"), outcome: permanent, status: 401},
		{name: "unknown folder", find: nhAnswer{404, `{"message":"Folder not found"}`}, wantQuery: findQuery("Phone"), outcome: permanent, status: 404},
		{name: "not JSON", find: nhAnswer{200, `<html>maintenance</html>`}, wantQuery: findQuery("Phone"), outcome: retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNetHunt(t, map[string]nhAnswer{"find-record": tt.find})
			fields := defaultFields
			if tt.fields != nil {
				fields = tt.fields
			}
			got, err := f.client(t, fields, cmpOr(tt.apiKey, nhKey)).Lookup(context.Background(), phone)
			checkOutcome(t, err, tt.outcome)
			if tt.status != 0 {
				var perm *crm.PermanentError
				if errors.As(err, &perm); perm.Status != tt.status {
					t.Fatalf("PermanentError status %d, want %d", perm.Status, tt.status)
				}
			}
			if tt.outcome == succeeds {
				assertRecord(t, got, tt.want)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
			}
			req := reqs[0]
			if req.Method != http.MethodGet || req.Path != nhPath+"/searches/find-record/"+nhFolder || req.Query != tt.wantQuery {
				t.Fatalf("request %s %s?%s, want GET %s?%s", req.Method, req.Path, req.Query,
					nhPath+"/searches/find-record/"+nhFolder, tt.wantQuery)
			}
			if q, _ := url.ParseQuery(req.Query); q.Get("query") != `"`+fields["phone"]+`":`+phone {
				t.Fatalf("query parameter decodes to %q", q.Get("query"))
			}
		})
	}
}

func assertRecord(t *testing.T, got, want *crm.Record) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("record %+v, want %+v", got, want)
	}
	if got == nil {
		return
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("record\n got %s\nwant %s", gj, wj)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestNetHuntApply(t *testing.T) {
	t.Parallel()
	ok := nhAnswer{200, `{"id":"rec-1"}`}
	commented := nhAnswer{200, `{"id":"comment-9"}`}
	update := crm.Update{
		Key: "outbox-17", Event: "call.completed", CallID: "7c0e6a8e-1111-4222-8333-944455556666", RecordID: "rec-1",
		PhoneNumber: phone, Status: "completed", Attempt: 1, Outcome: "interested", Summary: "Клієнт підтвердив участь у вебінарі",
	}
	updateBody := `{"fieldActions":{"Status":{"overwrite":true,"add":"interested"}}}`
	commentBody := `{"text":"Клієнт підтвердив участь у вебінарі"}`
	updatePath := nhPath + "/actions/update-record/rec-1"
	commentPath := nhPath + "/actions/create-comment/rec-1"
	findPath := nhPath + "/searches/find-record/" + nhFolder

	// want is one expected request: method, path and query, and JSON body.
	type want struct{ method, target, body string }
	tests := []struct {
		name    string
		fields  config.CRMFields
		update  func(u *crm.Update)
		answers map[string]nhAnswer
		want    []want
		outcome outcome
		errText string
	}{
		{
			name: "update and comment", answers: map[string]nhAnswer{"update-record": ok, "create-comment": commented},
			want: []want{{"POST", updatePath, updateBody}, {"POST", commentPath, commentBody}},
		},
		{
			name: "no comment without a summary", update: func(u *crm.Update) { u.Summary = "" },
			answers: map[string]nhAnswer{"update-record": ok},
			want:    []want{{"POST", updatePath, updateBody}},
		},
		{
			name: "record resolved by phone", update: func(u *crm.Update) { u.RecordID = "" },
			answers: map[string]nhAnswer{"find-record": {200, `[{"id":"rec-found","name":"Іван","fields":{}}]`}, "update-record": ok, "create-comment": commented},
			want: []want{
				{"GET", findPath + "?" + findQuery("Phone"), ""},
				{"POST", nhPath + "/actions/update-record/rec-found", updateBody},
				{"POST", nhPath + "/actions/create-comment/rec-found", commentBody},
			},
		},
		{
			name: "no record for the phone", update: func(u *crm.Update) { u.RecordID = "" },
			answers: map[string]nhAnswer{"find-record": {200, `[]`}},
			want:    []want{{"GET", findPath + "?" + findQuery("Phone"), ""}},
			outcome: permanent, errText: "no CRM record for phone " + phone,
		},
		{
			name: "lookup fails while resolving", update: func(u *crm.Update) { u.RecordID = "" },
			answers: map[string]nhAnswer{"find-record": {502, `Bad Gateway`}},
			want:    []want{{"GET", findPath + "?" + findQuery("Phone"), ""}},
			outcome: retryable,
		},
		{
			name:   "renamed fields",
			fields: config.CRMFields{"phone": "Телефон", "name": "Ім'я", "status": "Статус"},
			update: func(u *crm.Update) { u.RecordID = "" },
			answers: map[string]nhAnswer{"find-record": {200, `[{"id":"rec-1","name":"Іван","fields":{}}]`}, "update-record": ok,
				"create-comment": commented},
			want: []want{
				{"GET", findPath + "?" + findQuery("Телефон"), ""},
				{"POST", updatePath, `{"fieldActions":{"Статус":{"overwrite":true,"add":"interested"}}}`},
				{"POST", commentPath, commentBody},
			},
		},
		{
			name: "status stands in for an empty outcome", update: func(u *crm.Update) { u.Event, u.Status, u.Outcome, u.Summary = "call.failed", "failed", "", "" },
			answers: map[string]nhAnswer{"update-record": ok},
			want:    []want{{"POST", updatePath, `{"fieldActions":{"Status":{"overwrite":true,"add":"failed"}}}`}},
		},
		{
			name: "update rate limited", answers: map[string]nhAnswer{"update-record": {429, `{"message":"Too many requests"}`}},
			want: []want{{"POST", updatePath, updateBody}}, outcome: retryable,
		},
		{
			name: "update server error", answers: map[string]nhAnswer{"update-record": {500, `{"message":"Internal error"}`}},
			want: []want{{"POST", updatePath, updateBody}}, outcome: retryable,
		},
		{
			name: "update rejected", answers: map[string]nhAnswer{"update-record": {400, `{"message":"Unknown field Status"}`}},
			want: []want{{"POST", updatePath, updateBody}}, outcome: permanent, errText: "CRM answered 400",
		},
		{
			name: "record gone", answers: map[string]nhAnswer{"update-record": {404, `{"message":"Record not found"}`}},
			want: []want{{"POST", updatePath, updateBody}}, outcome: permanent,
		},
		{
			name: "comment server error", answers: map[string]nhAnswer{"update-record": ok, "create-comment": {503, ``}},
			want: []want{{"POST", updatePath, updateBody}, {"POST", commentPath, commentBody}}, outcome: retryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNetHunt(t, tt.answers)
			fields := defaultFields
			if tt.fields != nil {
				fields = tt.fields
			}
			u := update
			if tt.update != nil {
				tt.update(&u)
			}
			err := f.client(t, fields, nhKey).Apply(context.Background(), u)
			checkOutcome(t, err, tt.outcome)
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("error %q does not mention %q", err, tt.errText)
			}
			// The answer's body is not kept: errors are shown to tenants.
			if err != nil && strings.Contains(err.Error(), "Unknown field") {
				t.Fatalf("error %q echoes the CRM's body", err)
			}
			reqs := f.requests()
			if len(reqs) != len(tt.want) {
				t.Fatalf("%d requests, want %d: %+v", len(reqs), len(tt.want), reqs)
			}
			for i, w := range tt.want {
				got := reqs[i]
				target := got.Path
				if got.Query != "" {
					target += "?" + got.Query
				}
				if got.Method != w.method || target != w.target {
					t.Fatalf("request %d: %s %s, want %s %s", i, got.Method, target, w.method, w.target)
				}
				if w.body == "" {
					if got.Body != "" {
						t.Fatalf("request %d: unexpected body %q", i, got.Body)
					}
					continue
				}
				jsonEqual(t, target, got.Body, w.body)
			}
		})
	}
}

// roundTripFunc lets a test see the request the adapter would send to the
// real NetHunt, without sending it.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNetHuntBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, baseURL, want string }{
		{"default", "", "https://nethunt.com/api/v1/zapier/searches/find-record/" + nhFolder + "?" + findQuery("Phone")},
		{"trailing slash", "https://eu.nethunt.example/api/v1/zapier/", "https://eu.nethunt.example/api/v1/zapier/searches/find-record/" + nhFolder + "?" + findQuery("Phone")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got string
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r.URL.String()
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`[]`)), Header: http.Header{}, Request: r}, nil
			})}
			c, err := crm.New(config.CRM{Kind: "nethunt", FolderID: nhFolder, BaseURL: tt.baseURL}, defaultFields,
				map[string]string{crm.SecretNetHuntEmail: nhEmail, crm.SecretNetHuntAPIKey: nhKey}, client)
			if err != nil {
				t.Fatalf("crm.New: %v", err)
			}
			if r, err := c.Lookup(context.Background(), phone); r != nil || err != nil {
				t.Fatalf("Lookup = %v, %v", r, err)
			}
			if got != tt.want {
				t.Fatalf("URL %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNetHuntTransportFailures(t *testing.T) {
	t.Parallel()
	huge := `[{"id":"rec-1","name":"` + strings.Repeat("x", 2<<20) + `","fields":{}}]`
	tests := []struct {
		name  string
		setup func(t *testing.T) (crm.Client, context.Context)
	}{
		{"answer over 1 MiB", func(t *testing.T) (crm.Client, context.Context) {
			f := newFakeNetHunt(t, map[string]nhAnswer{"find-record": {200, huge}})
			return f.client(t, defaultFields, nhKey), context.Background()
		}},
		{"server down", func(t *testing.T) (crm.Client, context.Context) {
			f := newFakeNetHunt(t, nil)
			c := f.client(t, defaultFields, nhKey)
			f.srv.Close()
			return c, context.Background()
		}},
		{"cancelled", func(t *testing.T) (crm.Client, context.Context) {
			f := newFakeNetHunt(t, map[string]nhAnswer{"find-record": {200, `[]`}})
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return f.client(t, defaultFields, nhKey), ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ctx := tt.setup(t)
			r, err := c.Lookup(ctx, phone)
			checkOutcome(t, err, retryable)
			if r != nil {
				t.Fatalf("record %+v with an error", r)
			}
		})
	}
}
