package webhooks_test

import (
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
)

// TestForgedPostcallsHoldNoMoreThanTheUnverifiedBudget: anyone who knows
// a slug can send post-calls with a well-formed, fresh, wrong signature.
// Many of them at once, each stalled one byte before its end (so that none
// can be refused for its hash yet), make the process hold no more than
// CALLQUEUE_UNVERIFIED_BODY_BYTES: those that would pass it are answered
// 503 with Retry-After at once, the others 401 once they end. Bodies of a
// declared length and chunked ones alike. Not parallel: it measures the
// process's heap.
func TestForgedPostcallsHoldNoMoreThanTheUnverifiedBudget(t *testing.T) {
	const (
		budget   = 16 << 20
		bodySize = 4 << 20
		senders  = 24
	)
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{UnverifiedBodyBytes: budget, TrustedProxies: "127.0.0.0/8"})
	admin := env.Admin(in, "owner-forged")
	integ := admin.CreateIntegration("Forged Postcalls", nil, nil)
	admin.AddSecret(integ, "ELEVENLABS_WEBHOOK_SECRET", "whsec-forged-0123456789abcdef")

	heapBefore, rssBefore := heapInUse(), residentBytes(t)
	finish := make(chan struct{})
	var stalled, answeredEarly atomic.Int32 // senders stuck one byte before their end, or answered before it
	var wg sync.WaitGroup
	statuses := make([]int, senders)
	retryAfter := make([]string, senders)
	pipes := make([]*io.PipeWriter, senders)
	transport := &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 30 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	for i := range senders {
		pr, pw := io.Pipe()
		pipes[i] = pw
		req, err := http.NewRequest("POST", in.URL+"/"+integ.Slug+"/webhook/agent-postcall", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = bodySize
		switch i % 4 {
		case 1, 3:
			req.ContentLength = -1 // chunked: the length is learnt while reading
		case 2:
			// A client that waits for 100 Continue is told 503 before it
			// sends anything; the others may be cut off mid-body instead.
			req.Header.Set("Expect", "100-continue")
		}
		req.Header.Set("ElevenLabs-Signature", "t="+strconv.FormatInt(env.Clock.Now().Unix(), 10)+",v0=00")
		req.Header.Set("X-Forwarded-For", "198.51.100."+strconv.Itoa(i+1)) // one address each: the total is tested
		var answered atomic.Bool
		wg.Add(2)
		go func() {
			defer wg.Done()
			resp, err := transport.RoundTrip(req)
			if err != nil {
				statuses[i] = -1 // cut off while sending: refused as well
			} else {
				statuses[i], retryAfter[i] = resp.StatusCode, resp.Header.Get("Retry-After")
				_ = resp.Body.Close()
			}
			if answered.CompareAndSwap(false, true) {
				answeredEarly.Add(1)
			}
			_ = pr.CloseWithError(io.ErrClosedPipe) // a refused body is not read further
		}()
		go func() {
			defer wg.Done()
			chunk := []byte(strings.Repeat("x", 64<<10))
			for written := 0; written < bodySize-1; {
				n, err := pw.Write(chunk[:min(len(chunk), bodySize-1-written)])
				if err != nil {
					return
				}
				written += n
			}
			if answered.CompareAndSwap(false, true) {
				stalled.Add(1) // everything but the last byte is in
			}
			<-finish
			_, _ = pw.Write([]byte("}"))
			_ = pw.Close()
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for stalled.Load()+answeredEarly.Load() < senders && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := stalled.Load() + answeredEarly.Load(); got < senders {
		close(finish)
		t.Fatalf("after 60 s, %d of %d senders were neither answered nor stalled", senders-got, senders)
	}
	// Stalled senders' bytes may still sit in socket buffers: measure once
	// the process has read what it is going to (its heap settles).
	heapHeld := settledHeap() - heapBefore
	rssHeld := residentBytes(t) - rssBefore
	close(finish)
	wg.Wait()

	var unauthorized, unavailable int
	for i, status := range statuses {
		switch {
		case status == http.StatusUnauthorized: // read whole, then refused for its hash
			unauthorized++
		case status == http.StatusServiceUnavailable && retryAfter[i] != "", status == -1 && i%4 != 2:
			unavailable++
		default:
			t.Errorf("forged post-call %d: %d (Retry-After %q), want 401, or 503 with Retry-After", i, status, retryAfter[i])
		}
	}
	t.Logf("%d forged post-calls of %d MiB at once: %d read whole (401), %d refused (503); heap +%.1f MiB, RSS +%.1f MiB (budget %d MiB)",
		senders, bodySize>>20, unauthorized, unavailable, float64(heapHeld)/(1<<20), float64(rssHeld)/(1<<20), budget>>20)
	if unauthorized == 0 || unauthorized*bodySize > budget || unauthorized+unavailable != senders {
		t.Errorf("%d bodies of %d MiB were read whole and %d refused, under a budget of %d MiB", unauthorized, bodySize>>20,
			unavailable, budget>>20)
	}
	// What the pending bodies take, plus what a running process allocates
	// meanwhile (a few MiB), never all of them at once.
	if slack := int64(6 << 20); heapHeld > budget+slack {
		t.Errorf("the heap grew by %d MiB with forged bodies pending; the budget is %d MiB", heapHeld>>20, budget>>20)
	}
	// Once they are answered the budget is whole again: a real post-call
	// is taken.
	status, _, raw := servicetest.Send(t, http.DefaultClient, "POST", in.URL+"/"+integ.Slug+"/webhook/agent-postcall",
		map[string]string{"ElevenLabs-Signature": "t=" + strconv.FormatInt(env.Clock.Now().Unix(), 10) + ",v0=00"}, `{}`)
	if status != http.StatusUnauthorized {
		t.Errorf("a forged post-call after the flood: %d %s, want 401 (read and refused, not 503)", status, raw)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// settledHeap is the live heap once two readings 100 ms apart agree
// within 1 MiB (at most for ten seconds).
func settledHeap() int64 {
	last := heapInUse()
	for range 100 {
		time.Sleep(100 * time.Millisecond)
		now := heapInUse()
		if now-last < 1<<20 && last-now < 1<<20 {
			return now
		}
		last = now
	}
	return last
}

// residentBytes is the process's resident set size (Linux).
func residentBytes(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Logf("no /proc/self/statm: %v", err)
		return 0
	}
	fields := strings.Fields(string(raw))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(fields[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
