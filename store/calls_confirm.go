package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// DialVerdict is whether a claimed attempt may be originated now.
type DialVerdict string

// Dial verdicts of ConfirmDial.
const (
	// DialGo: the attempt is still the call's and its window is open.
	DialGo DialVerdict = "go"
	// DialCancelled: the call was cancelled since its claim; it is not
	// dialled and its slot is given back.
	DialCancelled DialVerdict = "cancelled"
	// DialWindowClosed: the calling window closed since the claim; the call
	// waits for its next opening without spending the attempt.
	DialWindowClosed DialVerdict = "window_closed"
	// DialStale: the attempt is no longer the call's current dial (the
	// watchdog released it, an event settled it): nothing is sent.
	DialStale DialVerdict = "stale"
	// DialRateWait: the integration's dial rate has no token left for
	// this originate yet; ask again at DialRateDue (the call keeps its
	// slot: claims are paced already, so the wait is short).
	DialRateWait DialVerdict = "dial_rate_wait"
)

// DialRateDue is when a DialRateWait dial may ask again.
type DialRateDue = time.Time

// ConfirmDial judges a claimed attempt again under its call's row lock,
// immediately before its originate is sent: the claim may be seconds old
// (a pre-dial check, a wait for the integration's lock), and meanwhile the
// call may have been cancelled or its calling window closed (contract §3,
// §6). An originate it lets go keeps within its caller number's per_second
// (the number's limits as the claim took them) and takes a token of the
// integration's dial rate (§9). It records what it decides; the Applied are
// the events it recorded.
func (s *Store) ConfirmDial(ctx context.Context, claimed Claimed, now time.Time) (DialVerdict, DialRateDue, []Applied, error) {
	call := claimed.Call
	verdict := DialStale
	var (
		applied []Applied
		due     time.Time
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		verdict, applied = DialStale, nil
		calls, err := lockCalls(ctx, tx, []CallEvent{{IntegrationID: call.IntegrationID}}, []uuid.UUID{call.ID})
		if err != nil {
			return err
		}
		c := calls[call.ID]
		if c == nil || c.Attempt != call.Attempt || c.DialState != dialStateDialing {
			return nil
		}
		ev := CallEvent{IntegrationID: c.IntegrationID, CallID: c.ID, Attempt: c.Attempt, TraceID: deref(c.TraceID), At: now}
		switch {
		case c.Status == callstate.Cancelled && c.SlotTakenAt != nil:
			verdict = DialCancelled
			ev.Event = callstate.Event{Kind: callstate.DialAborted}
			ev.Detail = map[string]any{"notSent": "cancelled before the originate"}
		case c.Status != callstate.Initiated:
			return nil
		default:
			opens, _ := windowOpensAt(c.policy.CallingWindow, c.PhoneNumber, deref(c.Timezone), c.agentTimezone, now)
			if !opens.After(now) {
				verdict, due, err = sendLimits(ctx, tx, c, claimed.Caller, now, s.dbClock())
				return err
			}
			verdict = DialWindowClosed
			ev.Event = callstate.Event{Kind: callstate.DialDeferred, RetryAfter: opens.Sub(now)}
			ev.Detail = map[string]any{"notSent": "calling window closed before the originate",
				"notBefore": opens.UTC().Format(time.RFC3339)}
		}
		applied, err = applyEvents(ctx, tx, []CallEvent{ev}, nil, s.dbClock())
		return err
	})
	return verdict, due, applied, err
}

// sendLimits judges an originate at the database's time (read once): its
// caller number's per_second, then a token of the integration's dial rate.
// One that may not go yet is DialRateWait, with when to ask again on now's
// clock.
func sendLimits(ctx context.Context, tx pgx.Tx, c *lockedCall, caller *config.CallerID, now time.Time, dbClock *time.Time) (DialVerdict, time.Time, error) {
	perNumber := caller != nil && c.CallerID != nil && caller.Number == *c.CallerID && caller.PerSecond > 0
	rate := c.policy.DialRate
	if !perNumber && rate == nil {
		return DialGo, time.Time{}, nil
	}
	at, err := databaseNow(ctx, tx, dbClock)
	if err != nil {
		return DialStale, time.Time{}, err
	}
	onNowsClock := now.Sub(at)
	if perNumber {
		if ok, next, err := takeCallerSend(ctx, tx, c, *caller, at); err != nil || !ok {
			return DialRateWait, next.Add(onNowsClock), err
		}
	}
	if rate != nil {
		if ok, next, err := takeSendToken(ctx, tx, c.IntegrationID, *rate, at); err != nil || !ok {
			return DialRateWait, next.Add(onNowsClock), err
		}
	}
	return DialGo, time.Time{}, nil
}
