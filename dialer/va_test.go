package dialer_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// captured is one request a fake platform received.
type captured struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// platform is an httptest stand-in for a voice platform that records what it
// is sent and answers with its handler.
type platform struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []captured
}

func newPlatform(t *testing.T, answer http.HandlerFunc) *platform {
	t.Helper()
	p := &platform{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.reqs = append(p.reqs, captured{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		p.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) requests() []captured {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]captured(nil), p.reqs...)
}

// only returns the single request the platform received.
func (p *platform) only(t *testing.T) captured {
	t.Helper()
	reqs := p.requests()
	if len(reqs) != 1 {
		t.Fatalf("platform received %d requests, want 1", len(reqs))
	}
	return reqs[0]
}

// reply answers every request with status and body.
func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hang answers only when the client gives up.
func hang(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// assertJSON compares got with want as JSON values, ignoring key order.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func vaRequest(baseURL string) dialer.Request {
	return dialer.Request{
		IntegrationID: uuid.New(),
		CallID:        uuid.MustParse("0b8f8a3e-6f7e-4d2a-9a55-6f1c2d3e4f50"),
		Attempt:       1,
		Phone:         "+380501234567",
		Voice:         config.Voice{Provider: "va", BaseURL: baseURL, SipID: "sip-7", AssistantID: "asst-42"},
		Secret:        "va-token",
	}
}

func TestVAOriginateRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		vars     json.RawMessage
		slash    bool
		callerID string
		wantBody string
	}{
		{
			name: "dynamic variables passed through",
			vars: json.RawMessage(`{"client_name":"Іван","budget":1500,"vip":true}`),
			wantBody: `{"phone_number":"+380501234567","assistant_id":"asst-42","call_id":"0b8f8a3e-6f7e-4d2a-9a55-6f1c2d3e4f50.1",
				"dynamic_variables":{"client_name":"Іван","budget":1500,"vip":true}}`,
		},
		{
			name:  "no dynamic variables sends an empty object",
			slash: true,
			wantBody: `{"phone_number":"+380501234567","assistant_id":"asst-42","call_id":"0b8f8a3e-6f7e-4d2a-9a55-6f1c2d3e4f50.1",
				"dynamic_variables":{}}`,
		},
		{
			name:     "a caller number of the pool",
			callerID: "+14155550100",
			wantBody: `{"phone_number":"+380501234567","assistant_id":"asst-42","call_id":"0b8f8a3e-6f7e-4d2a-9a55-6f1c2d3e4f50.1",
				"dynamic_variables":{},"caller_id":"+14155550100"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(http.StatusOK, `{"callId":"va-1"}`))
			base := p.srv.URL
			if tt.slash {
				base += "/"
			}
			req := vaRequest(base)
			req.DynamicVariables, req.CallerID = tt.vars, tt.callerID
			if _, err := dialer.NewVA(p.srv.Client()).Originate(t.Context(), req); err != nil {
				t.Fatalf("Originate: %v", err)
			}
			got := p.only(t)
			if got.Method != http.MethodPost || got.Path != "/sip-7/originate/" {
				t.Errorf("request %s %s, want POST /sip-7/originate/", got.Method, got.Path)
			}
			if h := got.Header.Get("Authorization"); h != "Bearer va-token" {
				t.Errorf("Authorization %q, want %q", h, "Bearer va-token")
			}
			if h := got.Header.Get("Content-Type"); h != "application/json" {
				t.Errorf("Content-Type %q, want application/json", h)
			}
			assertJSON(t, got.Body, tt.wantBody)
		})
	}
}

func TestVAOriginateAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		body       string
		wantID     string
		wantReject bool
		wantErr    bool
	}{
		{name: "callId", status: 200, body: `{"success":true,"callId":"va-call-1"}`, wantID: "va-call-1"},
		{name: "call_id", status: 200, body: `{"call_id":"va-call-2"}`, wantID: "va-call-2"},
		{name: "id", status: 201, body: `{"id":"va-call-3"}`, wantID: "va-call-3"},
		{name: "numeric id", status: 200, body: `{"id":12345}`, wantID: "12345"},
		{name: "large numeric call_id", status: 200, body: `{"call_id":380501234567}`, wantID: "380501234567"},
		{name: "callId wins over id", status: 200, body: `{"id":"other","callId":"va-call-4"}`, wantID: "va-call-4"},
		{name: "empty callId falls back to id", status: 200, body: `{"callId":"","id":"va-call-5"}`, wantID: "va-call-5"},
		{name: "no id", status: 202, body: `{"status":"queued"}`, wantID: ""},
		{name: "not JSON", status: 200, body: `OK`, wantID: ""},
		{name: "400 rejected", status: 400, body: `{"error":"bad phone"}`, wantReject: true, wantErr: true},
		{name: "401 rejected", status: 401, body: `{"error":"unauthorized"}`, wantReject: true, wantErr: true},
		{name: "404 rejected", status: 404, body: `not found`, wantReject: true, wantErr: true},
		{name: "422 rejected", status: 422, body: `{"error":"invalid"}`, wantReject: true, wantErr: true},
		{name: "408 retryable", status: 408, body: ``, wantErr: true},
		{name: "429 retryable", status: 429, body: `{"error":"slow down"}`, wantErr: true},
		{name: "500 retryable", status: 500, body: `boom`, wantErr: true},
		{name: "502 retryable", status: 502, body: ``, wantErr: true},
		{name: "503 retryable", status: 503, body: `{"error":"busy"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(tt.status, tt.body))
			res, err := dialer.NewVA(p.srv.Client()).Originate(t.Context(), vaRequest(p.srv.URL))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := dialer.IsRejected(err); got != tt.wantReject {
				t.Errorf("IsRejected = %v, want %v (err %v)", got, tt.wantReject, err)
			}
			if tt.wantReject {
				var rej *dialer.RejectedError
				if !errors.As(err, &rej) {
					t.Fatalf("err = %v, want a *RejectedError", err)
				}
				if rej.Status != tt.status {
					t.Errorf("RejectedError.Status = %d, want %d", rej.Status, tt.status)
				}
			}
			if res.ExternalID != tt.wantID {
				t.Errorf("ExternalID = %q, want %q", res.ExternalID, tt.wantID)
			}
			if res.ConversationID != "" {
				t.Errorf("ConversationID = %q, want none from the VA", res.ConversationID)
			}
		})
	}
}

func TestVAOriginateTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client func(*http.Client) *http.Client
		ctx    func(context.Context) (context.Context, context.CancelFunc)
	}{
		{
			name: "client timeout",
			client: func(c *http.Client) *http.Client {
				c2 := *c
				c2.Timeout = 50 * time.Millisecond
				return &c2
			},
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) { return ctx, func() {} },
		},
		{
			name:   "context deadline",
			client: func(c *http.Client) *http.Client { return c },
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, hang)
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			_, err := dialer.NewVA(tt.client(p.srv.Client())).Originate(ctx, vaRequest(p.srv.URL))
			if err == nil || dialer.IsRejected(err) {
				t.Fatalf("err = %v, want a retryable error", err)
			}
			var netErr net.Error
			if !errors.As(err, &netErr) || !netErr.Timeout() {
				t.Errorf("err = %v, want a timeout", err)
			}
		})
	}
}

func TestVABreaker(t *testing.T) {
	t.Parallel()
	const trips = 3
	tests := []struct {
		name     string
		status   int
		dials    int
		wantHits int
		wantOpen bool
	}{
		{name: "5xx opens after consecutive failures", status: 503, dials: trips + 2, wantHits: trips, wantOpen: true},
		{name: "4xx does not open", status: 400, dials: trips + 2, wantHits: trips + 2},
		{name: "2xx does not open", status: 200, dials: trips + 2, wantHits: trips + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlatform(t, reply(tt.status, `{}`))
			d := dialer.WithBreakers(dialer.NewVA(p.srv.Client()), breaker.NewSet[dialer.Result](breaker.Settings{
				Peer: "va", ConsecutiveFailures: trips, OpenFor: time.Hour, IsSuccessful: dialer.IsRejected,
			}))
			req := vaRequest(p.srv.URL)
			var last error
			for range tt.dials {
				_, last = d.Originate(t.Context(), req)
			}
			if got := len(p.requests()); got != tt.wantHits {
				t.Errorf("platform received %d requests, want %d", got, tt.wantHits)
			}
			if got := errors.Is(last, breaker.ErrOpen); got != tt.wantOpen {
				t.Errorf("last error %v: breaker.ErrOpen = %v, want %v", last, got, tt.wantOpen)
			}
			if got := d.Allows(req.IntegrationID); got == tt.wantOpen {
				t.Errorf("Allows = %v, want %v", got, !tt.wantOpen)
			}
			if !d.Allows(uuid.New()) {
				t.Error("another integration's breaker is open; breakers must be per integration")
			}
		})
	}
}
