package load

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestOpenLoopCountsFromTheScheduledTime: a server that answers one
// request at a time, 20 ms each, offered 100 requests a second for half a
// second. The generator keeps its schedule (it does not wait for answers),
// and the last request's latency includes its time queued behind the
// others: about 1 s, where a closed loop would report 20 ms.
func TestOpenLoopCountsFromTheScheduledTime(t *testing.T) {
	var one sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		one.Lock()
		time.Sleep(20 * time.Millisecond)
		one.Unlock()
	}))
	defer srv.Close()
	start := time.Now()
	r := Open(t.Context(), srv.Client(), 100, 500*time.Millisecond, http.MethodGet, srv.URL, http.Header{}, nil)
	if r.Failed != 0 || r.OK != 50 {
		t.Fatalf("ok %d failed %d, want 50 and 0", r.OK, r.Failed)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("the run took %s: the server cannot have served 50 requests of 20 ms one at a time", took)
	}
	if worst := r.Latencies[len(r.Latencies)-1]; worst < 400*time.Millisecond {
		t.Fatalf("worst latency %s: not counted from the scheduled time", worst)
	}
	if best := r.Latencies[0]; best > 200*time.Millisecond {
		t.Fatalf("best latency %s: the first request waited for nothing", best)
	}
}
