package servicetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// FakeCRMSecret is the CRM_WEBHOOK_SECRET that signs requests to the fake
// CRM's webhook endpoints.
const FakeCRMSecret = "crm-webhook-secret"

// CRMRequest is one request the fake CRM received.
type CRMRequest struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is what the fake answered (0: the client gave up first).
	Status int
	At     time.Time
}

// JSON decodes the request's body.
func (r CRMRequest) JSON(t testing.TB) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("%s %s: body %q: %v", r.Method, r.Path, r.Body, err)
	}
	return out
}

// CRMRecord is a record the fake finds by phone.
type CRMRecord struct {
	ID     string
	Name   string
	Fields map[string]any
}

// FakeCRM speaks the generic webhook CRM's wire format: /lookup (GET
// ?phone=) and /update (POST). (NetHunt's fake is crm/nethunttest.) It can be
// taken down (SetStatus), made to refuse updates (SetUpdateStatus), made slow
// (SetLookupDelay) or made to hang (Hang).
type FakeCRM struct {
	*httptest.Server
	mu           sync.Mutex
	requests     []CRMRequest
	records      map[string]CRMRecord
	status       int
	updateStatus int
	lookupDelay  time.Duration
	hang         chan struct{}
	hangUpdates  chan struct{}
	inFlight     int
}

// NewFakeCRM starts a fake CRM for t.
func NewFakeCRM(t testing.TB) *FakeCRM {
	c := &FakeCRM{records: map[string]CRMRecord{}}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(func() {
		c.Release()
		c.Close()
	})
	return c
}

// LookupURL and UpdateURL are the webhook CRM's endpoints.
func (c *FakeCRM) LookupURL() string { return c.URL + "/lookup" }
func (c *FakeCRM) UpdateURL() string { return c.URL + "/update" }

// AddRecord makes phone findable.
func (c *FakeCRM) AddRecord(phone string, r CRMRecord) {
	c.mu.Lock()
	c.records[phone] = r
	c.mu.Unlock()
}

// SetStatus makes every request fail with status (an outage); 0 restores
// normal answers.
func (c *FakeCRM) SetStatus(status int) {
	c.mu.Lock()
	c.status = status
	c.mu.Unlock()
}

// SetUpdateStatus makes updates (not lookups) answer status; 0 restores.
func (c *FakeCRM) SetUpdateStatus(status int) {
	c.mu.Lock()
	c.updateStatus = status
	c.mu.Unlock()
}

// SetLookupDelay makes lookups take d, as a real CRM's search does.
func (c *FakeCRM) SetLookupDelay(d time.Duration) {
	c.mu.Lock()
	c.lookupDelay = d
	c.mu.Unlock()
}

// Hang makes lookups wait until Release (or their client gives up).
func (c *FakeCRM) Hang() {
	c.mu.Lock()
	c.hang = make(chan struct{})
	c.mu.Unlock()
}

// Release lets hanging lookups answer.
func (c *FakeCRM) Release() {
	c.mu.Lock()
	if c.hang != nil {
		close(c.hang)
		c.hang = nil
	}
	c.mu.Unlock()
}

// HangUpdates makes updates hang until ReleaseUpdates (or the client gives
// up): a CRM slower than anything callqueue waits for.
func (c *FakeCRM) HangUpdates() {
	c.mu.Lock()
	c.hangUpdates = make(chan struct{})
	c.mu.Unlock()
}

// ReleaseUpdates lets hanging updates answer.
func (c *FakeCRM) ReleaseUpdates() {
	c.mu.Lock()
	if c.hangUpdates != nil {
		close(c.hangUpdates)
		c.hangUpdates = nil
	}
	c.mu.Unlock()
}

func isLookup(r *http.Request) bool { return r.Method == http.MethodGet }

func (c *FakeCRM) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	i := len(c.requests)
	c.requests = append(c.requests, CRMRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(),
		Header: r.Header.Clone(), Body: body, At: time.Now()})
	c.inFlight++
	status, updateStatus, delay, hang := c.status, c.updateStatus, c.lookupDelay, c.hang
	if !isLookup(r) {
		hang = c.hangUpdates
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if isLookup(r) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
	}
	answer := func(code int, v any) {
		// Recorded before the client can see the answer.
		c.mu.Lock()
		c.requests[i].Status = code
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case status != 0:
		answer(status, map[string]any{"error": "crm unavailable"})
		return
	case updateStatus != 0 && !isLookup(r):
		answer(updateStatus, map[string]any{"error": "unknown record"})
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/lookup":
		rec, ok := c.record(r.URL.Query().Get("phone"))
		if !ok {
			answer(http.StatusNotFound, map[string]any{"error": "not found"})
			return
		}
		answer(http.StatusOK, map[string]any{"recordId": rec.ID, "name": rec.Name, "fields": rec.Fields})
	case r.Method == http.MethodPost && r.URL.Path == "/update":
		answer(http.StatusOK, map[string]any{"ok": true})
	default:
		answer(http.StatusNotFound, map[string]any{"error": "no such endpoint"})
	}
}

func (c *FakeCRM) record(phone string) (CRMRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.records[phone]
	return rec, ok
}

// Requests returns every request so far.
func (c *FakeCRM) Requests() []CRMRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CRMRequest(nil), c.requests...)
}

// Count is how many requests arrived so far.
func (c *FakeCRM) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.requests)
}

// InFlight is how many requests are being answered.
func (c *FakeCRM) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inFlight
}

// Where returns the requests for which match holds.
func (c *FakeCRM) Where(match func(CRMRequest) bool) []CRMRequest {
	var out []CRMRequest
	for _, r := range c.Requests() {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// Lookups are the lookup requests.
func (c *FakeCRM) Lookups() []CRMRequest {
	return c.Where(func(r CRMRequest) bool { return r.Method == http.MethodGet })
}

// Updates are the webhook CRM's update requests.
func (c *FakeCRM) Updates() []CRMRequest {
	return c.Where(func(r CRMRequest) bool { return r.Method == http.MethodPost && r.Path == "/update" })
}
