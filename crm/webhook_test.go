package crm_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
)

const whSecret = "whsec_3f9a1c"

// hmacHex is the contract's signature, computed here independently of the
// package: hex HMAC-SHA256(secret, "<t>.<raw body>").
func hmacHex(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts + "."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

var signatureFormat = regexp.MustCompile(`^t=(\d+),v1=([0-9a-f]{64})$`)

// checkSignature verifies header against body with the contract's formula
// and a t within a minute of now; it returns why not, or "".
func checkSignature(header string, body []byte) string {
	m := signatureFormat.FindStringSubmatch(header)
	if m == nil {
		return fmt.Sprintf("signature header %q is not t=<unix>,v1=<hex>", header)
	}
	unix, _ := strconv.ParseInt(m[1], 10, 64)
	if d := time.Since(time.Unix(unix, 0)).Abs(); d > time.Minute {
		return fmt.Sprintf("signature t is %v off", d)
	}
	if want := hmacHex(whSecret, m[1], body); m[2] != want {
		return fmt.Sprintf("signature v1 %s, want %s", m[2], want)
	}
	return ""
}

// whAnswer is how the fake answers one request.
type whAnswer struct {
	status int
	body   string
}

// fakeWebhookCRM is a user's CRM endpoint as the contract describes it: it
// verifies every request's signature (401 when wrong, as a careful CRM
// author would answer), and answers lookups on /lookup and updates on
// /update. /moved redirects to /update with the configured status.
type fakeWebhookCRM struct {
	recorder
	srv      *httptest.Server
	lookup   whAnswer
	update   whAnswer
	redirect int
	hold     chan struct{} // when set, /update waits for it (or the client to give up)
}

func newFakeWebhookCRM(t *testing.T, f *fakeWebhookCRM) *fakeWebhookCRM {
	t.Helper()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := f.record(r)
		if req.Path == "/moved" {
			http.Redirect(w, r, "/update", f.redirect)
			return
		}
		if why := checkSignature(r.Header.Get(crm.SignatureHeader), []byte(req.Body)); why != "" {
			http.Error(w, why, http.StatusUnauthorized)
			return
		}
		var a whAnswer
		switch {
		case req.Path == "/lookup" && r.Method == http.MethodGet:
			if req.Body != "" {
				t.Errorf("lookup with a body: %q", req.Body)
			}
			a = f.lookup
		case req.Path == "/update" && r.Method == http.MethodPost:
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("update with Content-Type %q", ct)
			}
			if r.Header.Get("Idempotency-Key") == "" {
				t.Error("update without an Idempotency-Key")
			}
			if f.hold != nil {
				select {
				case <-f.hold:
				case <-r.Context().Done():
					return
				}
			}
			a = f.update
		default:
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

// client returns the adapter for the fake; lookupPath "" leaves lookup_url
// unset.
func (f *fakeWebhookCRM) client(t *testing.T, lookupPath, updatePath, secret string) crm.Client {
	t.Helper()
	cfg := config.CRM{Kind: "webhook", UpdateURL: f.srv.URL + updatePath}
	if lookupPath != "" {
		cfg.LookupURL = f.srv.URL + lookupPath
	}
	c, err := crm.New(cfg, defaultFields, map[string]string{crm.SecretWebhook: secret}, f.srv.Client())
	if err != nil {
		t.Fatalf("crm.New: %v", err)
	}
	return c
}

func TestWebhookLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		lookupPath string
		secret     string
		answer     whAnswer
		want       *crm.Record
		wantQuery  string // "" when no request should be made
		outcome    outcome
		status     int
	}{
		{
			name: "found", lookupPath: "/lookup", answer: whAnswer{200, `{"recordId":"rec-7","fields":{"Name":"Іван","Company":"ТОВ Ромашка"}}`},
			wantQuery: "phone=%2B380991234567",
			want:      &crm.Record{ID: "rec-7", Fields: map[string]any{"Name": "Іван", "Company": "ТОВ Ромашка"}},
		},
		{
			name: "numeric record id and a name", lookupPath: "/lookup", answer: whAnswer{200, `{"recordId":48213,"name":"Іван Петренко","fields":{}}`},
			wantQuery: "phone=%2B380991234567", want: &crm.Record{ID: "48213", Name: "Іван Петренко", Fields: map[string]any{}},
		},
		{
			name: "lookup_url with its own query", lookupPath: "/lookup?token=abc%20def&v=2", answer: whAnswer{200, `{"recordId":"rec-7","fields":{}}`},
			wantQuery: "token=abc%20def&v=2&phone=%2B380991234567", want: &crm.Record{ID: "rec-7", Fields: map[string]any{}},
		},
		{name: "not found", lookupPath: "/lookup", answer: whAnswer{404, `{"error":"no such phone"}`}, wantQuery: "phone=%2B380991234567"},
		{name: "empty answer", lookupPath: "/lookup", answer: whAnswer{204, ``}, wantQuery: "phone=%2B380991234567"},
		{name: "no lookup_url", lookupPath: ""},
		{name: "server error", lookupPath: "/lookup", answer: whAnswer{500, `oops`}, wantQuery: "phone=%2B380991234567", outcome: retryable},
		{name: "rate limited", lookupPath: "/lookup", answer: whAnswer{429, ``}, wantQuery: "phone=%2B380991234567", outcome: retryable},
		{name: "unauthorized", lookupPath: "/lookup", answer: whAnswer{401, `{"error":"bad token"}`}, wantQuery: "phone=%2B380991234567", outcome: permanent, status: 401},
		{name: "wrong secret", lookupPath: "/lookup", secret: "rotated", answer: whAnswer{200, `{}`}, wantQuery: "phone=%2B380991234567", outcome: permanent, status: 401},
		{name: "not JSON", lookupPath: "/lookup", answer: whAnswer{200, `<html></html>`}, wantQuery: "phone=%2B380991234567", outcome: retryable},
		{
			name: "record id not a string or number", lookupPath: "/lookup", answer: whAnswer{200, `{"recordId":{"id":1},"fields":{}}`},
			wantQuery: "phone=%2B380991234567", outcome: retryable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeWebhookCRM(t, &fakeWebhookCRM{lookup: tt.answer})
			got, err := f.client(t, tt.lookupPath, "/update", cmpOr(tt.secret, whSecret)).Lookup(context.Background(), phone)
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
			if tt.wantQuery == "" {
				if len(reqs) != 0 {
					t.Fatalf("requests without a lookup_url: %+v", reqs)
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
			}
			if r := reqs[0]; r.Method != http.MethodGet || r.Path != "/lookup" || r.Query != tt.wantQuery {
				t.Fatalf("request %s %s?%s, want GET /lookup?%s", r.Method, r.Path, r.Query, tt.wantQuery)
			}
		})
	}
}

// contractFields are the update body's keys, as CONTRACT §5 lists them.
var contractFields = []string{"event", "callId", "recordId", "phoneNumber", "status", "attempt", "durationSecs",
	"outcome", "summary", "analysis", "dynamicVariables", "callerId"}

func TestWebhookApply(t *testing.T) {
	t.Parallel()
	duration, callerID := 45.5, "+14155550100"
	full := crm.Update{
		Key: "outbox-17", Event: "call.completed", CallID: "7c0e6a8e-1111-4222-8333-944455556666", RecordID: "rec-7",
		PhoneNumber: phone, Status: "completed", Attempt: 2, DurationSecs: &duration, Outcome: "interested",
		Summary:          "Клієнт підтвердив участь у вебінарі",
		Analysis:         json.RawMessage(`{"call_successful":"success","transcript_summary":"Клієнт підтвердив участь у вебінарі"}`),
		DynamicVariables: json.RawMessage(`{"client_name":"Іван","phone_number":"+380991234567"}`),
		CallerID:         &callerID,
	}
	fullBody := `{"event":"call.completed","callId":"7c0e6a8e-1111-4222-8333-944455556666","recordId":"rec-7",
		"phoneNumber":"+380991234567","status":"completed","attempt":2,"durationSecs":45.5,"outcome":"interested",
		"summary":"Клієнт підтвердив участь у вебінарі",
		"analysis":{"call_successful":"success","transcript_summary":"Клієнт підтвердив участь у вебінарі"},
		"dynamicVariables":{"client_name":"Іван","phone_number":"+380991234567"},"callerId":"+14155550100"}`
	failed := crm.Update{Key: "outbox-18", Event: "call.failed", CallID: "c-2", PhoneNumber: phone, Status: "failed",
		Attempt: 3, Outcome: "no_answer", Analysis: json.RawMessage{}}
	failedBody := `{"event":"call.failed","callId":"c-2","recordId":"","phoneNumber":"+380991234567","status":"failed",
		"attempt":3,"durationSecs":null,"outcome":"no_answer","summary":"","analysis":null,"dynamicVariables":null,"callerId":null}`

	tests := []struct {
		name     string
		update   crm.Update
		answer   whAnswer
		wantBody string
		wantKey  string
		outcome  outcome
	}{
		{name: "delivered", update: full, answer: whAnswer{200, `{"ok":true}`}, wantBody: fullBody, wantKey: "outbox-17"},
		{name: "final failure, unknowns are null", update: failed, answer: whAnswer{200, ``}, wantBody: failedBody, wantKey: "outbox-18"},
		{
			name: "key falls back to call and event", update: func() crm.Update { u := failed; u.Key = ""; return u }(),
			answer: whAnswer{200, ``}, wantBody: failedBody, wantKey: "c-2:call.failed",
		},
		{name: "201", update: full, answer: whAnswer{201, `{"id":"n1"}`}, wantBody: fullBody, wantKey: "outbox-17"},
		{name: "202", update: full, answer: whAnswer{202, ``}, wantBody: fullBody, wantKey: "outbox-17"},
		{name: "204", update: full, answer: whAnswer{204, ``}, wantBody: fullBody, wantKey: "outbox-17"},
		{name: "400", update: full, answer: whAnswer{400, `{"error":"bad outcome"}`}, wantBody: fullBody, wantKey: "outbox-17", outcome: permanent},
		{name: "401", update: full, answer: whAnswer{401, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: permanent},
		{name: "404", update: full, answer: whAnswer{404, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: permanent},
		{name: "409", update: full, answer: whAnswer{409, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: permanent},
		{name: "422", update: full, answer: whAnswer{422, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: permanent},
		{name: "408", update: full, answer: whAnswer{408, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: retryable},
		{name: "429", update: full, answer: whAnswer{429, `slow down`}, wantBody: fullBody, wantKey: "outbox-17", outcome: retryable},
		{name: "500", update: full, answer: whAnswer{500, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: retryable},
		{name: "502", update: full, answer: whAnswer{502, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: retryable},
		{name: "503", update: full, answer: whAnswer{503, ``}, wantBody: fullBody, wantKey: "outbox-17", outcome: retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeWebhookCRM(t, &fakeWebhookCRM{update: tt.answer})
			err := f.client(t, "/lookup", "/update", whSecret).Apply(context.Background(), tt.update)
			checkOutcome(t, err, tt.outcome)
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1: %+v", len(reqs), reqs)
			}
			r := reqs[0]
			if r.Method != http.MethodPost || r.Path != "/update" || r.Query != "" {
				t.Fatalf("request %s %s?%s, want POST /update", r.Method, r.Path, r.Query)
			}
			jsonEqual(t, "update", r.Body, tt.wantBody)
			var keys map[string]json.RawMessage
			_ = json.Unmarshal([]byte(r.Body), &keys)
			for _, k := range contractFields {
				if _, ok := keys[k]; !ok {
					t.Errorf("body lacks %q", k)
				}
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if key := r.Header.Get("Idempotency-Key"); key != tt.wantKey {
				t.Errorf("Idempotency-Key %q, want %q", key, tt.wantKey)
			}
			sig := r.Header.Get(crm.SignatureHeader)
			if why := checkSignature(sig, []byte(r.Body)); why != "" {
				t.Error(why)
			}
			if err := crm.VerifySignature(whSecret, sig, []byte(r.Body), time.Now(), crm.SignatureToleranceDefault); err != nil {
				t.Errorf("VerifySignature: %v", err)
			}
		})
	}
}

// TestWebhookApplyDelivery covers answers that are not a plain status: a
// CRM that checks signatures, redirects, a hung CRM and one that is down.
func TestWebhookApplyDelivery(t *testing.T) {
	t.Parallel()
	u := crm.Update{Key: "outbox-1", Event: "call.completed", CallID: "c-1", PhoneNumber: phone, Status: "completed", Outcome: "ok"}
	tests := []struct {
		name       string
		fake       *fakeWebhookCRM
		updatePath string
		secret     string
		timeout    time.Duration
		down       bool
		update     *crm.Update // instead of u
		wantPaths  []string
		outcome    outcome
	}{
		{
			name: "wrong secret is refused", fake: &fakeWebhookCRM{update: whAnswer{200, ``}}, updatePath: "/update", secret: "rotated",
			wantPaths: []string{"/update"}, outcome: permanent,
		},
		{
			name: "307 is followed with the body", fake: &fakeWebhookCRM{update: whAnswer{200, ``}, redirect: http.StatusTemporaryRedirect},
			updatePath: "/moved", wantPaths: []string{"/moved", "/update"},
		},
		{
			name: "302 is not turned into a GET", fake: &fakeWebhookCRM{update: whAnswer{200, ``}, redirect: http.StatusFound},
			updatePath: "/moved", wantPaths: []string{"/moved"}, outcome: retryable,
		},
		{
			name: "timeout", fake: &fakeWebhookCRM{update: whAnswer{200, ``}, hold: make(chan struct{})}, updatePath: "/update",
			timeout: 100 * time.Millisecond, wantPaths: []string{"/update"}, outcome: retryable,
		},
		{name: "down", fake: &fakeWebhookCRM{}, updatePath: "/update", down: true, outcome: retryable},
		{
			name: "invalid analysis is never sent", fake: &fakeWebhookCRM{}, updatePath: "/update", outcome: permanent,
			update: &crm.Update{Key: "outbox-2", Event: "call.completed", CallID: "c-1", Analysis: json.RawMessage(`{"call_successful":`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeWebhookCRM(t, tt.fake)
			httpClient := f.srv.Client()
			if tt.timeout > 0 {
				httpClient.Timeout = tt.timeout
			}
			c, err := crm.New(config.CRM{Kind: "webhook", UpdateURL: f.srv.URL + tt.updatePath}, defaultFields,
				map[string]string{crm.SecretWebhook: cmpOr(tt.secret, whSecret)}, httpClient)
			if err != nil {
				t.Fatalf("crm.New: %v", err)
			}
			if tt.down {
				f.srv.Close()
			}
			update := u
			if tt.update != nil {
				update = *tt.update
			}
			checkOutcome(t, c.Apply(context.Background(), update), tt.outcome)
			var paths []string
			for _, r := range f.requests() {
				paths = append(paths, r.Path)
				if r.Path == "/update" && r.Body == "" {
					t.Errorf("%s %s without a body", r.Method, r.Path)
				}
			}
			if !slices.Equal(paths, tt.wantPaths) {
				t.Fatalf("requests to %v, want %v", paths, tt.wantPaths)
			}
		})
	}
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_768_000_000, 0)
	body := []byte(`{"event":"call.completed","callId":"c-1"}`)
	at := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	header := func(ts string, sigs ...string) string {
		h := "t=" + ts
		for _, s := range sigs {
			h += ",v1=" + s
		}
		return h
	}
	good := hmacHex(whSecret, at(now), body)
	tests := []struct {
		name      string
		secret    string
		header    string
		body      []byte
		tolerance time.Duration
		want      error
	}{
		{name: "valid", header: header(at(now), good)},
		{name: "valid, spaces", header: "t=" + at(now) + ", v1=" + good},
		{name: "valid, upper-case hex", header: header(at(now), strings.ToUpper(good))},
		{name: "one of several v1 (secret rotation)", header: header(at(now), hmacHex("old", at(now), body), good)},
		{name: "a little old", header: header(at(now.Add(-4*time.Minute)), hmacHex(whSecret, at(now.Add(-4*time.Minute)), body))},
		{name: "clock skew ahead", header: header(at(now.Add(time.Minute)), hmacHex(whSecret, at(now.Add(time.Minute)), body))},
		{
			name: "too old", header: header(at(now.Add(-6*time.Minute)), hmacHex(whSecret, at(now.Add(-6*time.Minute)), body)),
			want: crm.ErrSignatureStale,
		},
		{
			name: "too far ahead", header: header(at(now.Add(6*time.Minute)), hmacHex(whSecret, at(now.Add(6*time.Minute)), body)),
			want: crm.ErrSignatureStale,
		},
		{
			name: "no tolerance: any age", tolerance: -1,
			header: header(at(now.Add(-48*time.Hour)), hmacHex(whSecret, at(now.Add(-48*time.Hour)), body)),
		},
		{name: "wrong secret", secret: "other", header: header(at(now), good), want: crm.ErrSignatureMismatch},
		{name: "empty secret", secret: "-", header: header(at(now), hmacHex("", at(now), body)), want: crm.ErrSignatureMismatch},
		{name: "tampered body", header: header(at(now), good), body: []byte(`{"event":"call.completed","callId":"c-2"}`), want: crm.ErrSignatureMismatch},
		{name: "signed t replaced", header: header(at(now.Add(-time.Second)), good), want: crm.ErrSignatureMismatch},
		{name: "other scheme", header: "t=" + at(now) + ",v0=" + good, want: crm.ErrSignatureMalformed},
		{name: "no t", header: "v1=" + good, want: crm.ErrSignatureMalformed},
		{name: "t not a number", header: header("yesterday", good), want: crm.ErrSignatureMalformed},
		{name: "garbage", header: "sha256=" + good + ",junk", want: crm.ErrSignatureMalformed},
		{name: "missing", header: "  ", want: crm.ErrSignatureMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secret := cmpOr(tt.secret, whSecret)
			if secret == "-" {
				secret = ""
			}
			b := body
			if tt.body != nil {
				b = tt.body
			}
			tolerance := crm.SignatureToleranceDefault
			if tt.tolerance != 0 {
				tolerance = tt.tolerance
			}
			if err := crm.VerifySignature(secret, tt.header, b, now, tolerance); !errors.Is(err, tt.want) {
				t.Fatalf("VerifySignature = %v, want %v", err, tt.want)
			}
		})
	}
}

// A CRM author's update endpoint, in Go: verify the signature over the raw
// body before trusting it, and use Idempotency-Key to apply a redelivered
// update once.
func ExampleVerifySignature() {
	secret := "whsec_3f9a1c" // the integration's CRM_WEBHOOK_SECRET
	applied := map[string]bool{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		err = crm.VerifySignature(secret, r.Header.Get(crm.SignatureHeader), body, time.Now(), crm.SignatureToleranceDefault)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if applied[key] {
			w.WriteHeader(http.StatusOK) // already applied: still a success, so it is not sent again
			return
		}
		var u struct {
			Event   string `json:"event"`
			Outcome string `json:"outcome"`
		}
		if err := json.Unmarshal(body, &u); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest) // 4xx: callqueue will not retry
			return
		}
		applied[key] = true
		fmt.Println("applied", u.Event, u.Outcome)
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()

	c, _ := crm.New(config.CRM{Kind: "webhook", UpdateURL: srv.URL + "/callqueue"}, nil,
		map[string]string{crm.SecretWebhook: secret}, srv.Client())
	u := crm.Update{Key: "outbox-17", Event: "call.completed", CallID: "c-1", Outcome: "interested"}
	fmt.Println(c.Apply(context.Background(), u))
	fmt.Println(c.Apply(context.Background(), u)) // a redelivery
	// Output:
	// applied call.completed interested
	// <nil>
	// <nil>
}
