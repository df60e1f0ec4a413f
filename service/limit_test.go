package service_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestLimitHoldsAcrossReplicas sends a burst of 60 calls to an integration
// with concurrency_limit 2 served by three worker processes (plus one for
// webhooks and one for the admin API). The fake VA behaves like a phone
// network: every accepted originate is answered, then hung up a few
// milliseconds later, with call_start and call_end sent to the webhook. The
// VA must never see a third live call, and every call is dialled once.
func TestLimitHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const calls, limit = 60, 2
	c := startCluster(t, 3, clusterOptions{CallHandling: map[string]any{"concurrency_limit": limit}})
	net := c.phoneNetwork(t, 1, 15)

	ids := make([]uuid.UUID, calls)
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for g := range 6 {
		wg.Go(func() {
			for i := g; i < calls; i += 6 {
				id, err := c.originate(map[string]any{"phone_number": fmt.Sprintf("+38099%07d", i)}, "")
				if err != nil {
					errs <- err
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	waitFor(t, 30*time.Second, "every call to reach waiting_postcall", func() bool {
		return c.countStatus(t, "waiting_postcall") == calls
	}, func() string { return c.describeStragglers(t, "waiting_postcall") })
	net.check(t)

	if m := c.va.MaxLive(); m > limit {
		t.Errorf("the VA had %d calls live at once; the limit is %d", m, limit)
	}
	reqs := c.va.Requests()
	if len(reqs) != calls {
		t.Errorf("the VA got %d originates for %d calls", len(reqs), calls)
	}
	for _, r := range reqs {
		if r.Live >= limit {
			t.Errorf("originate of %s arrived with %d calls live (limit %d)", r.CallID, r.Live, limit)
		}
	}
	rows := c.calls(t)
	for _, id := range ids {
		if n := c.va.CountFor(id.String()); n != 1 {
			t.Errorf("call %s dialled %d times", id, n)
		}
		if r := rows[id]; r.Attempt != 1 {
			t.Errorf("call %s has attempt %d, want 1", id, r.Attempt)
		}
	}
	if st := c.stats(t); st.Active != 0 || st.WaitingPostcall != calls {
		t.Errorf("stats = %+v, want no active call and %d waiting_postcall", st, calls)
	}
	// The limit held across replicas, not because one process happened to
	// do all the dialling.
	dialling := 0
	for _, w := range c.workers {
		if metricValue(t, w.URL, "callqueue_dials_total", `result="accepted"`) > 0 {
			dialling++
		}
	}
	if dialling < 2 {
		t.Errorf("%d of %d worker processes dialled", dialling, len(c.workers))
	}
}

// TestPriorityThenFIFO: with one slot busy, calls queued later with a
// higher priority are dialled first, and calls of equal priority in the
// order they arrived.
func TestPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, clusterOptions{CallHandling: map[string]any{"concurrency_limit": 1}})

	first, err := c.originate(map[string]any{"phone_number": "+380990000001"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.va.Next(t, 10*time.Second); o.Call() != first.String() {
		t.Fatalf("first originate for %s, want %s", o.CallID, first)
	}
	// The slot is taken; queue low, low, high, high, each a second apart
	// on the service's clock (queued_at comes from it).
	names := map[uuid.UUID]string{}
	for i, p := range []struct {
		name     string
		priority int
	}{{"low-1", 0}, {"low-2", 0}, {"high-1", 5}, {"high-2", 5}} {
		c.env.Clock.Advance(time.Second)
		id, err := c.originate(map[string]any{"phone_number": fmt.Sprintf("+38099100000%d", i), "priority": p.priority}, "")
		if err != nil {
			t.Fatal(err)
		}
		names[id] = p.name
	}
	servicetest.Eventually(t, 10*time.Second, "four calls queued", func() bool { return c.countStatus(t, "queued") == 4 })

	var order []string
	live := first
	for range names {
		if err := c.callEnd(live, 30); err != nil {
			t.Fatal(err)
		}
		c.va.End(live.String())
		o := c.va.Next(t, 10*time.Second)
		if o.Live != 0 {
			t.Fatalf("originate of %s arrived with %d calls live", o.CallID, o.Live)
		}
		live = uuid.MustParse(o.Call())
		order = append(order, names[live])
	}
	if want := []string{"high-1", "high-2", "low-1", "low-2"}; !equal(order, want) {
		t.Fatalf("dial order = %v, want %v", order, want)
	}
	if n := len(c.va.Requests()); n != 5 {
		t.Fatalf("VA got %d originates, want 5", n)
	}
}

// phoneNet is the fake VA's behaviour as a phone network.
type phoneNet struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// phoneNetwork makes every accepted originate ring through: call_start at
// once, naming the call by the VA's own id (possibly before its answer to
// the originate is recorded), then after minMs..maxMs the call is hung up
// (the VA no longer counts it live) and call_end with a 30-second duration
// is sent under our id. Events are retried until the webhook takes them,
// as a real dialler does.
func (c *cluster) phoneNetwork(t *testing.T, minMs, maxMs int) *phoneNet {
	n := &phoneNet{}
	c.va.OnRequest(func(o servicetest.Originate) {
		id, err := uuid.Parse(o.Call())
		if err != nil {
			n.fail(err)
			return
		}
		n.wg.Go(func() {
			if err := c.sendEvent(map[string]any{"eventType": "call_start", "callId": "va-" + o.CallID}); err != nil {
				n.fail(err)
				return
			}
			time.Sleep(time.Duration(minMs+rand.IntN(maxMs-minMs+1)) * time.Millisecond)
			c.va.End(o.CallID)
			if err := c.callEnd(id, 30); err != nil {
				n.fail(err)
			}
		})
	})
	// Runs before the instances shut down (cleanups run last-in first-out).
	t.Cleanup(func() {
		c.va.OnRequest(nil)
		n.wg.Wait()
	})
	return n
}

func (n *phoneNet) fail(err error) {
	n.mu.Lock()
	n.errs = append(n.errs, err)
	n.mu.Unlock()
}

func (n *phoneNet) check(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, err := range n.errs {
		t.Error(err)
	}
}

// callEnd reports the end of a call of durationSecs.
func (c *cluster) callEnd(id uuid.UUID, durationSecs float64) error {
	return c.sendEvent(map[string]any{"eventType": "call_end", "callId": id.String(), "duration": durationSecs})
}

// stats is the integration's stats from the admin API.
func (c *cluster) stats(t *testing.T) store.Stats {
	t.Helper()
	var st store.Stats
	if code := c.admin.Do("GET", "/api/integrations/"+c.integ.ID.String()+"/stats", nil, &st); code != http.StatusOK {
		t.Fatalf("stats: %d", code)
	}
	return st
}
