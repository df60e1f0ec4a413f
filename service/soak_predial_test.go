package service_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/hmacsig"
)

const (
	// soakPredialSecret signs the pre-dial requests (PREDIAL_SECRET).
	soakPredialSecret = "soak-predial-secret"
	// soakPredialTimeout is the integration's pre-dial timeout_ms: a slow
	// answer comes within it, a late one after it.
	soakPredialTimeout = 800 * time.Millisecond
)

// soakPredial is the customer's pre-dial endpoint of the soak. While the
// faults run it answers some checks slowly, late (after callqueue gave
// up), with a 5xx, or "not eligible", and sometimes the operator cancels
// the call while its check is under way. It remembers when it answered
// each attempt: a call cancelled before its check was answered must not be
// dialled, since the dial is confirmed only after that answer.
type soakPredial struct {
	srv    *httptest.Server
	cancel func(id uuid.UUID) // the operator's cancel, from the check's goroutine

	mu       sync.Mutex
	rng      *rand.Rand
	quiet    bool
	answered map[string]time.Time // "<call>.<attempt>" -> when its last answer was sent
	counts   map[string]int
	issues   []string
}

func newSoakPredial(t *testing.T, rng *rand.Rand, cancel func(uuid.UUID)) *soakPredial {
	p := &soakPredial{cancel: cancel, rng: rng, answered: map[string]time.Time{}, counts: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *soakPredial) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	ts, _, sigs, err := hmacsig.Parse(r.Header.Get("X-Callqueue-Signature"), "v1")
	if err != nil || len(sigs) != 1 || sigs[0] != hmacsig.Sum(soakPredialSecret, ts, body) {
		p.problem("pre-dial request without a valid signature")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req struct {
		CallID  uuid.UUID `json:"callId"`
		Attempt int       `json:"attempt"`
	}
	if json.Unmarshal(body, &req) != nil || req.CallID == uuid.Nil || req.Attempt < 1 {
		p.problem(fmt.Sprintf("pre-dial request %s", body))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	roll, quiet := p.rng.Float64(), p.quiet
	delay := time.Duration(100+p.rng.IntN(int(soakPredialTimeout/time.Millisecond)-300)) * time.Millisecond
	p.mu.Unlock()
	answer := func(status int, text string) {
		p.mu.Lock()
		p.answered[fmt.Sprintf("%s.%d", req.CallID, req.Attempt)] = time.Now()
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, text)
	}
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	kind := "eligible"
	switch {
	case quiet:
	case roll < 0.08:
		kind = "slow"
	case roll < 0.12:
		kind = "late"
	case roll < 0.16:
		kind = "503"
	case roll < 0.19:
		kind = "500"
	case roll < 0.23:
		kind = "ineligible"
	case roll < 0.31:
		kind = "cancelled_during_check"
	}
	p.mu.Lock()
	p.counts[kind]++
	p.mu.Unlock()
	switch kind {
	case "slow":
		if wait(delay) {
			answer(http.StatusOK, `{"eligible": true}`)
		}
	case "late":
		// Past the timeout: callqueue has given up and fails closed.
		if wait(2 * soakPredialTimeout) {
			answer(http.StatusOK, `{"eligible": true}`)
		}
	case "503":
		answer(http.StatusServiceUnavailable, `{"error": "unavailable"}`)
	case "500":
		answer(http.StatusInternalServerError, `{"error": "internal"}`)
	case "ineligible":
		answer(http.StatusOK, `{"eligible": false, "reason": "customer churned"}`)
	case "cancelled_during_check":
		p.cancel(req.CallID)
		answer(http.StatusOK, `{"eligible": true}`)
	default:
		answer(http.StatusOK, `{"eligible": true}`)
	}
}

// answeredAfter reports whether the check of the call's attempt was last
// answered after at.
func (p *soakPredial) answeredAfter(call uuid.UUID, attempt int, at time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	answered, ok := p.answered[fmt.Sprintf("%s.%d", call, attempt)]
	return ok && answered.After(at)
}

func (p *soakPredial) setQuiet() {
	p.mu.Lock()
	p.quiet = true
	p.mu.Unlock()
}

func (p *soakPredial) problem(s string) {
	p.mu.Lock()
	p.issues = append(p.issues, s)
	p.mu.Unlock()
}

func (p *soakPredial) summary() (map[string]int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	counts := map[string]int{}
	for k, v := range p.counts {
		counts[k] = v
	}
	return counts, append([]string(nil), p.issues...)
}
