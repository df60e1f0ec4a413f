package store

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
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

// ConfirmDial is ConfirmDialAt without the dial rate's due time.
func (s *Store) ConfirmDial(ctx context.Context, call Call, now time.Time) (DialVerdict, []Applied, error) {
	verdict, _, applied, err := s.ConfirmDialAt(ctx, call, now)
	return verdict, applied, err
}

// ConfirmDialAt judges a claimed attempt again under its call's row lock,
// immediately before its originate is sent: the claim may be seconds old
// (a pre-dial check, a wait for the integration's lock), and meanwhile the
// call may have been cancelled or its calling window closed (contract §3,
// §6). An originate it lets go takes a token of the integration's dial
// rate and keeps within its caller number's per_second (§9). It records what it decides; the Applied are the events it
// recorded.
func (s *Store) ConfirmDialAt(ctx context.Context, call Call, now time.Time) (DialVerdict, DialRateDue, []Applied, error) {
	return s.ConfirmClaimedDial(ctx, Claimed{Call: call}, now)
}

// ConfirmClaimedDial is ConfirmDialAt for a dial as its claim took it: its
// caller number's limits come with it instead of from the config.
func (s *Store) ConfirmClaimedDial(ctx context.Context, claimed Claimed, now time.Time) (DialVerdict, DialRateDue, []Applied, error) {
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
				if c.CallerID != nil {
					at, err := databaseNow(ctx, tx, s.dbClock())
					if err != nil {
						return err
					}
					ok, next, err := takeCallerSend(ctx, tx, c, claimed.Caller, at)
					if err != nil || !ok {
						verdict, due = DialRateWait, next.Add(now.Sub(at))
						return err
					}
				}
				if r := c.policy.DialRate; r != nil {
					ok, next, err := takeSendToken(ctx, tx, c.IntegrationID, *r, now, s.dbClock())
					if err != nil || !ok {
						verdict, due = DialRateWait, next
						return err
					}
				}
				verdict = DialGo
				return nil
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
