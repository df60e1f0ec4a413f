package workers

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestDispatcherBacksOffRefusedDials: after the breaker refused a dial
// (half-open: one probe goes through), the integration is not claimed
// again at once but after a growing backoff, then kicked by itself; a dial
// that gets through ends the backoff.
func TestDispatcherBacksOffRefusedDials(t *testing.T) {
	t.Parallel()
	d := newDispatcher(&Workers{}, nil)
	id := uuid.New()
	d.refused(id)
	d.refused(id) // a second refusal of the same claim backs off once
	d.Kick(id)
	if got, _, ok := d.next(); ok {
		t.Fatalf("dispatched %s during its backoff", got)
	}
	if b := d.backoffs[id]; b.delay != RefusedBackoffFirst {
		t.Fatalf("backoff %s, want %s", b.delay, RefusedBackoffFirst)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _, ok := d.next(); ok {
			if got != id {
				t.Fatalf("dispatched %s, want %s", got, id)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the integration was not dispatched after its backoff")
		}
		<-d.wake // the backoff's own kick
	}
	d.done(id)
	d.refused(id)
	if b := d.backoffs[id]; b.delay != 2*RefusedBackoffFirst {
		t.Fatalf("second backoff %s, want %s", b.delay, 2*RefusedBackoffFirst)
	}
	d.dialled(id)
	d.Kick(id)
	if got, _, ok := d.next(); !ok || got != id {
		t.Fatal("a dial that got through did not end the backoff")
	}
}
