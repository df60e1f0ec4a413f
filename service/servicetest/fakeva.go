package servicetest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// FakeVAToken is the VA_AUTH_TOKEN the fake expects.
const FakeVAToken = "va-secret-token"

// Originate is one originate request the fake VA received.
type Originate struct {
	CallID           string         `json:"call_id"`
	PhoneNumber      string         `json:"phone_number"`
	AssistantID      string         `json:"assistant_id"`
	DynamicVariables map[string]any `json:"dynamic_variables"`
	// CallerID is the number the call is placed from (voice.caller_ids).
	CallerID string    `json:"caller_id"`
	SipID    string    `json:"-"`
	At       time.Time `json:"-"`
	// Traceparent is the W3C trace context the request carried.
	Traceparent string `json:"-"`
	// Live is how many calls the VA had live when this one arrived.
	Live int `json:"-"`
}

// Call is the call id the attempt's call_id carries ("<uuid>.<n>").
func (o Originate) Call() string {
	id, _, _ := strings.Cut(o.CallID, ".")
	return id
}

// FakeVA speaks the VA originate API: POST /{sip_id}/originate/ with a
// bearer token. It counts live calls (originated, not yet ended by the
// test) and remembers the highest count it ever saw.
type FakeVA struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []Originate
	live      map[string]bool
	maxLive   int
	status    int
	hang      chan struct{}
	arrived   chan Originate
	onRequest func(Originate)
	reuseIDs  bool
	decide    func(Originate) (status int, delay time.Duration)
}

// NewFakeVA starts a fake VA for t.
func NewFakeVA(t testing.TB) *FakeVA {
	va := &FakeVA{live: map[string]bool{}, status: http.StatusOK, arrived: make(chan Originate, 10000)}
	va.Server = httptest.NewServer(http.HandlerFunc(va.serve))
	t.Cleanup(func() {
		va.Release()
		va.Close()
	})
	return va
}

func (va *FakeVA) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || len(r.URL.Path) < len("/x/originate/") || r.URL.Path[len(r.URL.Path)-len("/originate/"):] != "/originate/" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+FakeVAToken {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	var o Originate
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil || o.CallID == "" || o.PhoneNumber == "" {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	o.SipID = r.URL.Path[1 : len(r.URL.Path)-len("/originate/")]
	o.At = time.Now()
	o.Traceparent = r.Header.Get("traceparent")
	va.mu.Lock()
	decide := va.decide
	va.mu.Unlock()
	var delay time.Duration
	status := 0
	if decide != nil {
		status, delay = decide(o)
	}
	va.mu.Lock()
	if decide == nil {
		status = va.status
	}
	hang, onRequest, reuse := va.hang, va.onRequest, va.reuseIDs
	if status < 300 {
		o.Live = len(va.live)
		va.live[o.CallID] = true
		va.maxLive = max(va.maxLive, len(va.live))
	}
	va.requests = append(va.requests, o)
	va.mu.Unlock()
	va.arrived <- o
	if onRequest != nil {
		onRequest(o)
	}
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		// The call is placed (or refused) already; only the answer is slow.
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status < 300 {
		id := "va-" + o.CallID
		if reuse {
			// Some VAs answer every attempt of a call with the same id.
			id, _, _ = strings.Cut(id, ".")
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "callId": id})
	} else {
		_ = json.NewEncoder(w).Encode(map[string]any{"error": "failed"})
	}
}

// SetStatus makes the VA answer with status from now on.
func (va *FakeVA) SetStatus(status int) {
	va.mu.Lock()
	va.status = status
	va.mu.Unlock()
}

// Decide makes fn choose each request's answer: its status (a 2xx places
// the call) and how long the answer takes. A call placed stays live when our
// request gives up waiting, as on a real platform.
func (va *FakeVA) Decide(fn func(Originate) (status int, delay time.Duration)) {
	va.mu.Lock()
	va.decide = fn
	va.mu.Unlock()
}

// Hang makes requests wait until Release (or their client gives up).
func (va *FakeVA) Hang() {
	va.mu.Lock()
	va.hang = make(chan struct{})
	va.mu.Unlock()
}

// Release lets hanging requests answer.
func (va *FakeVA) Release() {
	va.mu.Lock()
	if va.hang != nil {
		close(va.hang)
		va.hang = nil
	}
	va.mu.Unlock()
}

// OnRequest calls fn for each request (from the server's goroutine).
func (va *FakeVA) OnRequest(fn func(Originate)) {
	va.mu.Lock()
	va.onRequest = fn
	va.mu.Unlock()
}

// ReuseIDs makes the VA answer every attempt of a call with the same id
// ("va-<call uuid>") instead of one per attempt ("va-<call_id>").
func (va *FakeVA) ReuseIDs() {
	va.mu.Lock()
	va.reuseIDs = true
	va.mu.Unlock()
}

// End marks a call no longer live (the test sends its call_end): an
// attempt's call_id ends that attempt, a call uuid every attempt of it.
func (va *FakeVA) End(callID string) {
	va.mu.Lock()
	for live := range va.live {
		if live == callID || strings.HasPrefix(live, callID+".") {
			delete(va.live, live)
		}
	}
	va.mu.Unlock()
}

// Requests returns every request so far.
func (va *FakeVA) Requests() []Originate {
	va.mu.Lock()
	defer va.mu.Unlock()
	return append([]Originate(nil), va.requests...)
}

// CountFor returns how many originates callID received: an attempt's
// call_id ("<uuid>.<n>") counts that attempt, a call uuid every attempt.
func (va *FakeVA) CountFor(callID string) int {
	n := 0
	for _, r := range va.Requests() {
		if r.CallID == callID || strings.HasPrefix(r.CallID, callID+".") {
			n++
		}
	}
	return n
}

// MaxLive is the most calls the VA ever had live at once.
func (va *FakeVA) MaxLive() int {
	va.mu.Lock()
	defer va.mu.Unlock()
	return va.maxLive
}

// Next waits for the next originate request.
func (va *FakeVA) Next(t testing.TB, timeout time.Duration) Originate {
	t.Helper()
	select {
	case o := <-va.arrived:
		return o
	case <-time.After(timeout):
		t.Fatalf("no originate request within %s", timeout)
		return Originate{}
	}
}
