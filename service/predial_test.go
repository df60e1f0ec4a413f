package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callqueue/callqueue/hmacsig"
	"github.com/callqueue/callqueue/service/servicetest"
)

// fakePredial is a customer's pre-dial endpoint: it checks the signature
// and answers by number — eligible with variables, not eligible, too late,
// or not in the expected shape.
func fakePredial(t *testing.T, secret string) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _, sigs, err := hmacsig.Parse(r.Header.Get("X-Callqueue-Signature"), "v1")
		if err != nil || len(sigs) != 1 || sigs[0] != hmacsig.Sum(secret, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req struct {
			CallID      string `json:"callId"`
			Attempt     int    `json:"attempt"`
			PhoneNumber string `json:"phoneNumber"`
		}
		if json.Unmarshal(body, &req) != nil || req.CallID == "" || req.Attempt != 1 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch req.PhoneNumber {
		case "+380990000001":
			_, _ = io.WriteString(w, `{"eligible": true, "dynamicVariables": {"segment": "vip"}}`)
		case "+380990000002":
			_, _ = io.WriteString(w, `{"eligible": false, "reason": "customer churned"}`)
		case "+380990000003":
			select { // far beyond the 200 ms timeout; released at cleanup
			case <-release:
			case <-r.Context().Done():
			}
		case "+380990000004":
			_, _ = io.WriteString(w, `{"ok": "yes"}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

// TestPredialCheck: before each dial the pre-dial endpoint is asked, signed
// with PREDIAL_SECRET. Eligible calls are dialled with its variables merged
// in; eligible:false ends the call cancelled/ineligible with the reason in
// its history; a timeout, a 5xx or a malformed answer fails closed: not
// dialled, retry_scheduled in 60 s with the attempt given back.
func TestPredialCheck(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 5}})
	const secret = "predial-secret-123"
	srv := fakePredial(t, secret)
	if code := c.admin.Do("POST", "/api/integrations/"+c.integ.ID.String()+"/secrets",
		map[string]any{"key": "PREDIAL_SECRET", "value": secret}, nil); code != http.StatusCreated {
		t.Fatalf("secret: %d", code)
	}
	if code := c.admin.Do("PUT", "/api/integrations/"+c.integ.ID.String()+"/config/predial",
		map[string]any{"url": srv.URL, "timeout_ms": 200}, nil); code != http.StatusOK {
		t.Fatalf("predial config: %d", code)
	}
	if code := c.admin.Do("PUT", "/api/integrations/"+c.integ.ID.String()+"/config/predial",
		map[string]any{"url": "ftp://x", "timeout_ms": 200}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad predial url: %d, want 422", code)
	}
	eligible := c.mustOriginate(t, "+380990000001")
	ineligible := c.mustOriginate(t, "+380990000002")
	late := c.mustOriginate(t, "+380990000003")
	malformed := c.mustOriginate(t, "+380990000004")
	failing := c.mustOriginate(t, "+380990000005")

	o := c.va.Next(t, 10*time.Second)
	if o.Call() != eligible.String() || o.DynamicVariables["segment"] != "vip" {
		t.Fatalf("originate %s with %v, want %s with segment vip", o.CallID, o.DynamicVariables, eligible)
	}
	servicetest.Eventually(t, 20*time.Second, "every check to be answered", func() bool {
		rows := c.calls(t)
		return rows[ineligible].Status == "cancelled" && rows[late].Status == "retry_scheduled" &&
			rows[malformed].Status == "retry_scheduled" && rows[failing].Status == "retry_scheduled"
	})
	rows := c.calls(t)
	if r := rows[ineligible]; r.Outcome != "ineligible" {
		t.Errorf("ineligible call: outcome %q", r.Outcome)
	}
	var reason string
	if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT detail->>'reason' FROM call_events WHERE call_id = $1 AND to_status = 'cancelled'`,
		ineligible).Scan(&reason); err != nil || reason != "customer churned" {
		t.Errorf("history reason %q, %v", reason, err)
	}
	for name, id := range map[string]any{"late": late, "malformed": malformed, "failing": failing} {
		var attempt int
		var wait time.Duration
		if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT attempt, next_retry_at - updated_at FROM calls WHERE id = $1`, id).
			Scan(&attempt, &wait); err != nil {
			t.Fatal(err)
		}
		if attempt != 0 || wait != 60*time.Second {
			t.Errorf("%s: attempt %d, retry in %s; want attempt 0 (not spent), retry in 60s", name, attempt, wait)
		}
	}
	if n := len(c.va.Requests()); n != 1 {
		t.Errorf("the VA got %d originates, want only the eligible one", n)
	}
	for _, w := range c.workers {
		if v := metricValue(t, w.URL, "callqueue_dials_total", `result="predial_failed"`); v != 3 {
			t.Errorf("predial failures counted %v, want 3", v)
		}
	}
}
