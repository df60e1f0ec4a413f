package service_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/workers"
)

// TestReplicaBehindWritesTheDatabasesTimes: the only worker runs on a host
// whose clock is 110 s behind the database's. The VA refuses its dial
// (422), and the policy retries a failed dial after 60 s. The retry's due
// time is written on the database's clock, which the retry sweep judges it
// by: 60 s from now, not 50 s ago (which dialled the call again at once).
func TestReplicaBehindWritesTheDatabasesTimes(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 1, "max_attempts": 3,
		"retry_delays_secs": []int{60}}})
	const skew = -110 * time.Second
	in := c.startSkewedWorkers(t, "workers-behind", workers.Config{}, skew)
	c.va.SetStatus(http.StatusUnprocessableEntity)
	id := c.mustOriginate(t, "+380501234567")
	c.waitCall(t, id, "the refused dial to schedule a retry", func(r callRow) bool { return r.Status == string(callstate.RetryScheduled) })
	var due time.Time
	if err := c.env.Store.Pool().QueryRow(t.Context(), `SELECT next_retry_at FROM calls WHERE id = $1`, id).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if wait := due.Sub(c.env.Clock.Now()); wait < 50*time.Second || wait > 70*time.Second {
		t.Errorf("the retry is due %v after the database's clock, want 60 s (the worker's clock is %v off, corrected by %v)",
			wait.Round(time.Second), skew, in.ClockOffset())
	}
	servicetest.Eventually(t, 5*time.Second, "the worker's clock corrected", func() bool { return in.ClockOffset() == -skew })
}
