package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestCancelDuringPredial: a call cancelled while its pre-dial check is
// under way (after its slot was claimed, before its originate) is not
// dialled, and its slot goes at once to the next call.
func TestCancelDuringPredial(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 1}})
	const cancelledPhone, nextPhone = "+380990000011", "+380990000012"
	cancelled := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CallID      string `json:"callId"`
			PhoneNumber string `json:"phoneNumber"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if req.PhoneNumber == cancelledPhone {
			// The operator cancels the call while the check runs.
			cancel, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, c.admin.URL+"/api/calls/"+req.CallID+"/cancel", nil)
			cancel.Header.Set("Authorization", "Bearer "+c.admin.Token)
			code := 0
			if resp, err := http.DefaultClient.Do(cancel); err == nil {
				code = resp.StatusCode
				_ = resp.Body.Close()
			}
			cancelled <- code
		}
		_, _ = io.WriteString(w, `{"eligible": true}`)
	}))
	t.Cleanup(srv.Close)
	if code := c.admin.Do("PUT", "/api/integrations/"+c.integ.ID.String()+"/config/predial",
		map[string]any{"url": srv.URL, "timeout_ms": 5000}, nil); code != http.StatusOK {
		t.Fatalf("predial config: %d", code)
	}
	first := c.mustOriginate(t, cancelledPhone)
	select {
	case code := <-cancelled:
		if code != http.StatusOK {
			t.Fatalf("cancel during the pre-dial check: %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the pre-dial check was never asked")
	}
	second := c.mustOriginate(t, nextPhone)
	o := c.va.Next(t, 20*time.Second)
	if o.Call() != second.String() {
		t.Fatalf("originate for %s, want only %s (the call %s was cancelled before its originate)", o.CallID, second, first)
	}
	servicetest.Eventually(t, 10*time.Second, "the cancelled call's slot to be free", func() bool {
		var held bool
		err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT slot_taken_at IS NOT NULL FROM calls WHERE id = $1`, first).Scan(&held)
		return err == nil && !held
	})
	if r := c.calls(t)[first]; r.Status != "cancelled" {
		t.Errorf("first call %s, want cancelled", r.Status)
	}
}
