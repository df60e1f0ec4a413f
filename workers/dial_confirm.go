package workers

import (
	"context"
	"errors"
	"time"

	"github.com/callqueue/callqueue/store"
)

// errStoppingBeforeToken: a claimed dial still waiting for its dial-rate
// token when the process stops is not sent.
var errStoppingBeforeToken = errors.New("stopping before the dial rate's next token")

// confirmDial asks the store, under the call's row lock, whether the claimed
// attempt may still be originated: a call cancelled since its claim is not
// dialled (its slot is given back at once), one whose calling window
// closed meanwhile waits for its next opening, and one claimed so long ago
// that the watchdog could release it as lost while it is live goes back to
// the queue. An originate takes a token
// of the integration's dial rate there, as close to the send as can be;
// when there is none yet it waits for it (claims are paced by the same
// rate, so this wait only evens out originates that bunched up between
// their claims and their sends). It reports whether to send.
func (d *Dispatcher) confirmDial(ctx context.Context, claimed store.Claimed) (bool, error) {
	call := claimed.Call
	for {
		verdict, due, applied, err := d.w.store.ConfirmDial(ctx, claimed, d.w.clock.Now(), d.w.cfg.DialLostAfter)
		if err != nil {
			return false, err
		}
		d.w.applied(applied)
		if verdict == store.DialRateWait {
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-d.ClaimingStopped():
				// The process is stopping: the call goes back to the queue
				// now rather than hold the shutdown for its token, or be
				// abandoned at its deadline to wait for the watchdog.
				return false, errStoppingBeforeToken
			case <-time.After(max(due.Sub(d.w.clock.Now()), time.Millisecond)):
			}
			continue
		}
		if verdict != store.DialGo {
			d.w.metrics.Dialled(metricsCall(call), string(verdict))
			d.w.log.Info().Str("trace_id", deref(call.TraceID)).Str("call_id", call.ID.String()).Int("attempt", call.Attempt).
				Str("verdict", string(verdict)).Msg("claimed dial not sent")
		}
		return verdict == store.DialGo, nil
	}
}
