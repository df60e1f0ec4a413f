package crm_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/crm/nethunttest"
)

const phone = "+380991234567"

// nhClient is the adapter for a fake NetHunt, built through crm.New.
func nhClient(t *testing.T, nh *nethunttest.Server, cfg config.CRM, fields config.CRMFields, apiKey string) crm.Client {
	t.Helper()
	cfg.Kind = "nethunt"
	cfg.FolderID = cmpOr(cfg.FolderID, nethunttest.Folder)
	cfg.BaseURL = nh.BaseURL()
	c, err := crm.New(cfg, fields, map[string]string{crm.SecretNetHuntEmail: nethunttest.Email, crm.SecretNetHuntAPIKey: apiKey},
		nh.Client())
	if err != nil {
		t.Fatalf("crm.New: %v", err)
	}
	return c
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// searchedFor is what each find-record request searched the phone field
// for, and with which limit.
func searchedFor(t *testing.T, nh *nethunttest.Server) (queries []string, limits []string) {
	t.Helper()
	for _, r := range nh.Requests() {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.Path, nethunttest.Path+"/searches/find-record/") {
			continue
		}
		q, _ := url.ParseQuery(r.Query)
		queries, limits = append(queries, q.Get("query")), append(limits, q.Get("limit"))
	}
	return queries, limits
}

// TestNetHuntLookupFindsThePersonAsTyped: phones are stored as people type
// them and the search is tokenised; the lookup asks for every typed form of
// the number (quoted, 10 results each) and takes the one record whose phone
// field's digits end with the national significant number — never an
// earlier result that merely resembles it, and no one when two different
// records match.
func TestNetHuntLookupFindsThePersonAsTyped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// records are added in order: a later one is more recently changed,
		// so NetHunt lists it first.
		records []map[string]any
		want    int // index of the record found; -1: none
		// matches, when set, is an ambiguity of that many records.
		matches int
	}{
		{name: "E.164", records: []map[string]any{{"Name": "Іван", "Phone": "+380991234567"}}},
		{name: "international with spaces", records: []map[string]any{{"Name": "Іван", "Phone": "+380 99 123 45 67"}}},
		{name: "national with trunk prefix", records: []map[string]any{{"Name": "Іван", "Phone": "099 123 4567"}}},
		{name: "national significant number", records: []map[string]any{{"Name": "Іван", "Phone": "(99) 123-45-67"}}},
		{name: "second of several phones", records: []map[string]any{{"Name": "Іван", "Phone": []any{"+380 50 000 00 00", "0991234567"}}}},
		{
			name: "a resembling number listed first",
			records: []map[string]any{
				{"Name": "Іван", "Phone": "+380 99 123 45 67"},
				{"Name": "Петро", "Phone": "+380 99 123 45 678"}, // tokenised: begins with our number
			},
		},
		{
			name: "two different people with the number", matches: 2, want: -1,
			records: []map[string]any{{"Name": "Іван", "Phone": "+380991234567"}, {"Name": "Іван (дубль)", "Phone": "099 123 45 67"}},
		},
		{name: "only resembling numbers", want: -1, records: []map[string]any{{"Name": "Петро", "Phone": "+380 99 123 45 678"}}},
		{name: "no record", want: -1, records: []map[string]any{{"Name": "Олена", "Phone": "+380 67 100 00 01"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nh := nethunttest.New(t)
			var ids []string
			for _, r := range tt.records {
				ids = append(ids, nh.AddRecord(nethunttest.Folder, r))
			}
			got, err := nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey).Lookup(t.Context(), phone)
			var ambiguous *crm.AmbiguousError
			switch {
			case tt.matches > 0:
				if !errors.As(err, &ambiguous) || ambiguous.Matches != tt.matches || got != nil {
					t.Fatalf("Lookup = %+v, %v; want no record and %d matches", got, err, tt.matches)
				}
			case err != nil:
				t.Fatalf("Lookup: %v", err)
			case tt.want < 0:
				if got != nil {
					t.Fatalf("Lookup found %+v, want no record", got)
				}
			default:
				if got == nil || got.ID != ids[tt.want] || got.Fields["Name"] != tt.records[tt.want]["Name"] {
					t.Fatalf("Lookup = %+v, want record %s (%v)", got, ids[tt.want], tt.records[tt.want]["Name"])
				}
			}
			queries, limits := searchedFor(t, nh)
			wantQueries := []string{`"Phone":"+380991234567"`, `"Phone":"380991234567"`, `"Phone":"0991234567"`, `"Phone":"991234567"`}
			if !slices.Equal(queries, wantQueries) {
				t.Errorf("searched for %q, want %q", queries, wantQueries)
			}
			for _, l := range limits {
				if l != "10" {
					t.Errorf("limit %q, want 10", l)
				}
			}
		})
	}
}

// TestNetHuntLookupAnswers: what each NetHunt answer to a search comes to.
func TestNetHuntLookupAnswers(t *testing.T) {
	t.Parallel()
	t.Run("renamed phone field", func(t *testing.T) {
		t.Parallel()
		nh := nethunttest.New(t)
		nh.AddFolder("f-uk", nethunttest.Field{Name: "ПІБ"}, nethunttest.Field{Name: "Телефон", Multi: true},
			nethunttest.Field{Name: "Статус"})
		id := nh.AddRecord("f-uk", map[string]any{"ПІБ": "Олена", "Телефон": "099-123-45-67"})
		fields := config.CRMFields{"phone": "Телефон", "name": "ПІБ", "status": "Статус"}
		got, err := nhClient(t, nh, config.CRM{FolderID: "f-uk"}, fields, nethunttest.APIKey).Lookup(t.Context(), phone)
		if err != nil || got == nil || got.ID != id {
			t.Fatalf("Lookup = %+v, %v; want %s", got, err, id)
		}
		if q, _ := searchedFor(t, nh); len(q) == 0 || q[0] != `"Телефон":"+380991234567"` {
			t.Fatalf("queries %q", q)
		}
	})
	t.Run("caller id without its plus", func(t *testing.T) {
		t.Parallel()
		nh := nethunttest.New(t)
		id := nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": "099 123 45 67"})
		got, err := nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey).Lookup(t.Context(), "380991234567")
		if err != nil || got == nil || got.ID != id {
			t.Fatalf("Lookup = %+v, %v; want %s", got, err, id)
		}
	})
	t.Run("not a phone number", func(t *testing.T) {
		t.Parallel()
		nh := nethunttest.New(t)
		nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": "099 123 45 67"})
		got, err := nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey).Lookup(t.Context(), "anonymous")
		if err != nil || got != nil || len(nh.Requests()) != 0 {
			t.Fatalf("Lookup = %+v, %v after %d requests; want a miss without asking", got, err, len(nh.Requests()))
		}
	})
	t.Run("unknown folder is a miss", func(t *testing.T) {
		t.Parallel()
		nh := nethunttest.New(t)
		got, err := nhClient(t, nh, config.CRM{FolderID: "f-gone"}, defaultFields, nethunttest.APIKey).Lookup(t.Context(), phone)
		if got != nil || err != nil {
			t.Fatalf("Lookup = %+v, %v; want a miss (NetHunt answers 404)", got, err)
		}
	})
	for _, tt := range []struct {
		name    string
		setup   func(nh *nethunttest.Server)
		apiKey  string
		outcome outcome
		status  int
	}{
		{name: "server error", setup: func(nh *nethunttest.Server) { nh.SetStatus(500) }, outcome: retryable},
		{name: "unavailable", setup: func(nh *nethunttest.Server) { nh.SetStatus(503) }, outcome: retryable},
		{name: "request timeout", setup: func(nh *nethunttest.Server) { nh.SetStatus(408) }, outcome: retryable},
		{name: "rate limited", setup: func(nh *nethunttest.Server) { nh.RateLimit(1, "7") }, outcome: retryable},
		{name: "wrong api key", apiKey: "stale-key", outcome: permanent, status: 401},
		{name: "bad request", setup: func(nh *nethunttest.Server) { nh.SetStatus(400) }, outcome: permanent, status: 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nh := nethunttest.New(t)
			nh.AddRecord(nethunttest.Folder, map[string]any{"Phone": phone})
			if tt.setup != nil {
				tt.setup(nh)
			}
			got, err := nhClient(t, nh, config.CRM{}, defaultFields, cmpOr(tt.apiKey, nethunttest.APIKey)).Lookup(t.Context(), phone)
			checkOutcome(t, err, tt.outcome)
			if got != nil {
				t.Fatalf("record %+v with an error", got)
			}
			if tt.status != 0 {
				var perm *crm.PermanentError
				if errors.As(err, &perm); perm.Status != tt.status {
					t.Fatalf("PermanentError status %d, want %d", perm.Status, tt.status)
				}
			}
			if n := len(nh.Requests()); n != 1 {
				t.Fatalf("%d requests after a failed search, want 1", n)
			}
		})
	}
}

// TestNetHuntRecordID: a found record's id is recordId in the live API; an
// answer that carries id instead is read too.
func TestNetHuntRecordID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, answer, want string }{
		{"recordId", `[{"recordId":"rec-live","fields":{"Phone":["+380991234567"]}}]`, "rec-live"},
		{"id", `[{"id":"rec-old","name":"Іван","fields":{"Phone":"+380991234567"}}]`, "rec-old"},
		{"no id at all", `[{"fields":{"Phone":"+380991234567"}}]`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(tt.answer)), Header: http.Header{}, Request: r}, nil
			})}
			c, err := crm.New(config.CRM{Kind: "nethunt", FolderID: nethunttest.Folder}, defaultFields,
				map[string]string{crm.SecretNetHuntEmail: nethunttest.Email, crm.SecretNetHuntAPIKey: nethunttest.APIKey}, client)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Lookup(t.Context(), phone)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if got != nil {
					t.Fatalf("Lookup = %+v, want none (a record without an id cannot be updated)", got)
				}
				return
			}
			if got == nil || got.ID != tt.want {
				t.Fatalf("Lookup = %+v, want record %s", got, tt.want)
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
	const query = "?limit=10&query=%22Phone%22%3A%22%2B380991234567%22"
	tests := []struct{ name, baseURL, want string }{
		{"default", "", "https://nethunt.com/api/v1/zapier/searches/find-record/" + nethunttest.Folder + query},
		{"trailing slash", "https://eu.nethunt.example/api/v1/zapier/", "https://eu.nethunt.example/api/v1/zapier/searches/find-record/" + nethunttest.Folder + query},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = append(got, r.URL.String())
				return &http.Response{StatusCode: 404, Body: io.NopCloser(strings.NewReader(`Not Found`)), Header: http.Header{}, Request: r}, nil
			})}
			c, err := crm.New(config.CRM{Kind: "nethunt", FolderID: nethunttest.Folder, BaseURL: tt.baseURL}, defaultFields,
				map[string]string{crm.SecretNetHuntEmail: nethunttest.Email, crm.SecretNetHuntAPIKey: nethunttest.APIKey}, client)
			if err != nil {
				t.Fatalf("crm.New: %v", err)
			}
			if r, err := c.Lookup(context.Background(), phone); r != nil || err != nil {
				t.Fatalf("Lookup = %v, %v", r, err)
			}
			if len(got) != 4 || got[0] != tt.want {
				t.Fatalf("URLs %s, want %s first of 4", got, tt.want)
			}
		})
	}
}

func TestNetHuntTransportFailures(t *testing.T) {
	t.Parallel()
	huge := `[{"recordId":"rec-1","fields":{"Name":"` + strings.Repeat("x", 2<<20) + `"}}]`
	tests := []struct {
		name  string
		setup func(t *testing.T) (crm.Client, context.Context)
	}{
		{"answer over 1 MiB", func(t *testing.T) (crm.Client, context.Context) {
			client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(huge)), Header: http.Header{}, Request: r}, nil
			})}
			c, err := crm.New(config.CRM{Kind: "nethunt", FolderID: nethunttest.Folder}, defaultFields,
				map[string]string{crm.SecretNetHuntEmail: nethunttest.Email, crm.SecretNetHuntAPIKey: nethunttest.APIKey}, client)
			if err != nil {
				t.Fatal(err)
			}
			return c, context.Background()
		}},
		{"server down", func(t *testing.T) (crm.Client, context.Context) {
			nh := nethunttest.New(t)
			c := nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey)
			nh.Close()
			return c, context.Background()
		}},
		{"cancelled", func(t *testing.T) (crm.Client, context.Context) {
			nh := nethunttest.New(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey), ctx
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
