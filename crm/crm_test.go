package crm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// outcome is what a test expects of an adapter call's error.
type outcome int

const (
	succeeds  outcome = iota
	retryable         // a plain error: the outbox retries it with backoff
	permanent         // a *crm.PermanentError: kept, not retried
)

func (o outcome) String() string {
	return [...]string{"success", "a retryable error", "a permanent error"}[o]
}

// checkOutcome fails the test unless err is what want says.
func checkOutcome(t *testing.T, err error, want outcome) {
	t.Helper()
	got := succeeds
	switch {
	case crm.IsPermanent(err):
		got = permanent
	case err != nil:
		got = retryable
	}
	if got != want {
		t.Fatalf("got %v (err = %v), want %v", got, err, want)
	}
}

// request is one request a fake CRM received.
type request struct {
	Method string
	Path   string // escaped, as sent
	Query  string // raw, as sent
	Header http.Header
	Body   string
}

// recorder keeps the requests a fake CRM received, safe for its handler
// goroutines.
type recorder struct {
	mu   sync.Mutex
	reqs []request
}

func (r *recorder) record(req *http.Request) request {
	body, _ := io.ReadAll(req.Body)
	got := request{Method: req.Method, Path: req.URL.EscapedPath(), Query: req.URL.RawQuery,
		Header: req.Header.Clone(), Body: string(body)}
	r.mu.Lock()
	r.reqs = append(r.reqs, got)
	r.mu.Unlock()
	return got
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// jsonEqual fails the test unless got and want are the same JSON value.
func jsonEqual(t *testing.T, what, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("%s: body %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: bad expectation %q: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: body\n got %s\nwant %s", what, got, want)
	}
}

var defaultFields = config.CRMFields{"phone": "Phone", "name": "Name", "company": "Company", "source": "Source", "status": "Status"}

func TestNew(t *testing.T) {
	t.Parallel()
	nethuntSecrets := map[string]string{crm.SecretNetHuntEmail: "ops@example.com", crm.SecretNetHuntAPIKey: "key"}
	webhookSecrets := map[string]string{crm.SecretWebhook: "whsec"}
	tests := []struct {
		name    string
		cfg     config.CRM
		fields  config.CRMFields
		secrets map[string]string
		// wantErr, when set, is part of the PermanentError's message.
		wantErr  string
		wantNone bool
	}{
		{name: "none", cfg: config.CRM{Kind: "none"}, wantNone: true},
		{name: "empty kind", cfg: config.CRM{}, wantNone: true},
		{name: "unknown kind", cfg: config.CRM{Kind: "salesforce"}, wantErr: "unknown CRM kind salesforce"},
		{name: "nethunt", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"}, fields: defaultFields, secrets: nethuntSecrets},
		{
			name: "nethunt without email", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"}, fields: defaultFields,
			secrets: map[string]string{crm.SecretNetHuntAPIKey: "key"}, wantErr: "NETHUNT_EMAIL",
		},
		{
			name: "nethunt without api key", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"}, fields: defaultFields,
			secrets: map[string]string{crm.SecretNetHuntEmail: "ops@example.com", crm.SecretNetHuntAPIKey: ""}, wantErr: "NETHUNT_API_KEY",
		},
		{name: "nethunt without secrets", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"}, fields: defaultFields, wantErr: "is not set"},
		{name: "nethunt without folder", cfg: config.CRM{Kind: "nethunt"}, fields: defaultFields, secrets: nethuntSecrets, wantErr: "folder_id"},
		{
			name: "nethunt with a bad base_url", cfg: config.CRM{Kind: "nethunt", FolderID: "f1", BaseURL: "ftp://nethunt.com"},
			fields: defaultFields, secrets: nethuntSecrets, wantErr: "base_url",
		},
		{
			name: "nethunt without a phone field", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"},
			fields: config.CRMFields{"status": "Status"}, secrets: nethuntSecrets, wantErr: "crm_fields.phone",
		},
		{
			name: "nethunt without a status field", cfg: config.CRM{Kind: "nethunt", FolderID: "f1"},
			fields: config.CRMFields{"phone": "Phone"}, secrets: nethuntSecrets, wantErr: "crm_fields.status",
		},
		{name: "webhook", cfg: config.CRM{Kind: "webhook", UpdateURL: "https://crm.example/u"}, secrets: webhookSecrets},
		{
			name: "webhook with lookup", cfg: config.CRM{Kind: "webhook", LookupURL: "https://crm.example/l?token=x", UpdateURL: "https://crm.example/u"},
			secrets: webhookSecrets,
		},
		{name: "webhook without secret", cfg: config.CRM{Kind: "webhook", UpdateURL: "https://crm.example/u"}, wantErr: "CRM_WEBHOOK_SECRET"},
		{name: "webhook without update_url", cfg: config.CRM{Kind: "webhook"}, secrets: webhookSecrets, wantErr: "update_url"},
		{
			name: "webhook with a bad lookup_url", cfg: config.CRM{Kind: "webhook", LookupURL: "crm.example/l", UpdateURL: "https://crm.example/u"},
			secrets: webhookSecrets, wantErr: "lookup_url",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := crm.New(tt.cfg, tt.fields, tt.secrets, nil)
			if tt.wantErr != "" {
				checkOutcome(t, err, permanent)
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not mention %q", err, tt.wantErr)
				}
				if c != nil {
					t.Fatalf("client %#v returned with an error", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if c == nil {
				t.Fatal("New returned a nil client")
			}
			if _, isNone := c.(crm.None); isNone != tt.wantNone {
				t.Fatalf("client is %T, want None: %v", c, tt.wantNone)
			}
		})
	}
}

func TestSecretsFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind string
		want []string
	}{
		{"nethunt", []string{crm.SecretNetHuntEmail, crm.SecretNetHuntAPIKey}},
		{"webhook", []string{crm.SecretWebhook}},
		{"none", nil},
	}
	for _, tt := range tests {
		if got := crm.SecretsFor(config.CRM{Kind: tt.kind}); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SecretsFor(%s) = %v, want %v", tt.kind, got, tt.want)
		}
	}
}

func TestNone(t *testing.T) {
	t.Parallel()
	var c crm.Client = crm.None{}
	if r, err := c.Lookup(context.Background(), "+380991234567"); r != nil || err != nil {
		t.Fatalf("Lookup = %v, %v; want nil, nil", r, err)
	}
	if err := c.Apply(context.Background(), crm.Update{Key: "k"}); err != nil {
		t.Fatalf("Apply = %v", err)
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	perm := &crm.PermanentError{Status: 422, Message: "bad status value"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("CRM answered 503"), false},
		{"permanent", perm, true},
		{"wrapped", fmt.Errorf("apply update 7: %w", perm), true},
	}
	for _, tt := range tests {
		if got := crm.IsPermanent(tt.err); got != tt.want {
			t.Errorf("%s: IsPermanent = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got, want := perm.Error(), "CRM answered 422: bad status value"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestVariableName: the agent variables crm_fields defines are the keys
// Variables may give, without phone and status.
func TestVariableName(t *testing.T) {
	t.Parallel()
	fields := config.CRMFields{"phone": "Phone", "name": "Name", "status": "Status", "company": "Company", "source": "Source",
		"webinar_date": "Webinar date"}
	var got []string
	for ours := range fields {
		if name, ok := crm.VariableName(ours); ok {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	if want := []string{"client_name", "company", "lead_source", "webinar_date"}; !slices.Equal(got, want) {
		t.Errorf("variables %v, want %v", got, want)
	}
	record := &crm.Record{Fields: map[string]any{"Name": "Іван", "Company": "ACME", "Source": "web", "Webinar date": "1.2", "Phone": "1"}}
	for k := range crm.Variables(record, fields) {
		if !slices.Contains(got, k) {
			t.Errorf("Variables gave %s, which VariableName does not name", k)
		}
	}
}

func TestVariables(t *testing.T) {
	t.Parallel()
	record := &crm.Record{ID: "r1", Name: "Іван Петренко (record)", Fields: map[string]any{
		"Phone": "+380991234567", "Name": "Іван", "Company": "ТОВ Ромашка", "Source": "webinar",
		"Status": "new", "Ім'я": "Олена", "Компанія": "ФОП Коваль", "Джерело": "facebook",
		"Webinar date": "2026-02-01", "Manager": "", "Budget": 1500.0, "Tags": []any{"hot", "vip"},
	}}
	tests := []struct {
		name   string
		record *crm.Record
		fields config.CRMFields
		want   map[string]any
	}{
		{name: "no record", record: nil, fields: defaultFields, want: map[string]any{}},
		{
			name: "default fields", record: record, fields: defaultFields,
			want: map[string]any{"client_name": "Іван", "company": "ТОВ Ромашка", "lead_source": "webinar"},
		},
		{
			name: "renamed fields", record: record,
			fields: config.CRMFields{"phone": "Телефон", "name": "Ім'я", "company": "Компанія", "source": "Джерело", "status": "Статус"},
			want:   map[string]any{"client_name": "Олена", "company": "ФОП Коваль", "lead_source": "facebook"},
		},
		{
			name: "extra configured fields under their own key", record: record,
			fields: config.CRMFields{"phone": "Phone", "name": "Name", "status": "Status", "webinar_date": "Webinar date",
				"budget": "Budget", "tags": "Tags", "manager": "Manager", "missing": "Nope"},
			want: map[string]any{"client_name": "Іван", "webinar_date": "2026-02-01", "budget": 1500.0, "tags": []any{"hot", "vip"}},
		},
		{
			name: "record name when the name field is empty", record: &crm.Record{Name: "Іван Петренко", Fields: map[string]any{"Company": "ТОВ"}},
			fields: defaultFields, want: map[string]any{"client_name": "Іван Петренко", "company": "ТОВ"},
		},
		{
			name: "record without fields", record: &crm.Record{ID: "r2"}, fields: defaultFields, want: map[string]any{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := crm.Variables(tt.record, tt.fields)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Variables =\n %#v\nwant\n %#v", got, tt.want)
			}
		})
	}
}

// TestLookupWithoutPhone: a search for an empty phone could match any record
// (NetHunt's query would be `"Phone":`), so no adapter asks its CRM.
func TestLookupWithoutPhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     config.CRM
		secrets map[string]string
	}{
		{"nethunt", config.CRM{Kind: "nethunt", FolderID: "f1"}, map[string]string{crm.SecretNetHuntEmail: "e", crm.SecretNetHuntAPIKey: "k"}},
		{"webhook", config.CRM{Kind: "webhook", LookupURL: "https://crm.example/l", UpdateURL: "https://crm.example/u"},
			map[string]string{crm.SecretWebhook: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				t.Errorf("request %s %s", r.Method, r.URL)
				return nil, errors.New("no requests expected")
			})}
			c, err := crm.New(tt.cfg, defaultFields, tt.secrets, client)
			if err != nil {
				t.Fatalf("crm.New: %v", err)
			}
			if r, err := c.Lookup(context.Background(), ""); r != nil || err != nil {
				t.Fatalf("Lookup(\"\") = %v, %v; want nil, nil", r, err)
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
