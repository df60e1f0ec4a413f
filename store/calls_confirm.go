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
	// DialExpired: the claim is older than half the watchdog's window for
	// dials that never report back (an outage or a stalled process held it
	// between its claim and its originate). Sent now, the dial could be
	// released by the watchdog as lost while it is live at the platform,
	// and its slot taken by another: it is not sent, and the call goes back
	// to the queue without spending its attempt.
	DialExpired DialVerdict = "claim_expired"
)

// DialRateDue is when a DialRateWait dial may ask again.
type DialRateDue = time.Time

// ConfirmDial judges a claimed attempt again under its call's row lock,
// immediately before its originate is sent: the claim may be seconds old
// (a pre-dial check, a wait for the integration's lock), and meanwhile the
// call may have been cancelled or its calling window closed (contract §3,
// §6). An originate it lets go keeps within its caller number's per_second
// (the number's limits as the claim took them) and takes a token of the
// integration's dial rate (§9). dialLost is the watchdog's window for
// dials that never report back (OverdueCalls; 0: claims never expire): a
// claim older than half of it is not sent (DialExpired). It records what it
// decides; the Applied are the events it recorded.
func (s *Store) ConfirmDial(ctx context.Context, claimed Claimed, now time.Time, dialLost time.Duration) (DialVerdict, DialRateDue, []Applied, error) {
	if verdict, decided, err := s.confirmUnlimited(ctx, claimed, now, dialLost); err != nil || decided {
		return verdict, time.Time{}, nil, err
	}
	call := claimed.Call
	verdict := DialStale
	var (
		applied []Applied
		due     time.Time
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		verdict, applied = DialStale, nil
		// With the call's lock, in the same round trip: the lock of its
		// caller number and the database's time for the send limits.
		var after pipeline
		at := queueSendClock(&after, call, claimed.Caller)
		calls, err := lockCalls(ctx, tx, []CallEvent{{IntegrationID: call.IntegrationID}}, []uuid.UUID{call.ID}, &after)
		if err != nil {
			return err
		}
		c, dbNow := calls[call.ID], orTestClock(*at, s.dbClock())
		var ev *CallEvent
		if verdict, ev = judgeDial(c, call.Attempt, now, claimExpired(c, dbNow, dialLost)); verdict == DialGo {
			verdict, due, err = sendLimits(ctx, tx, c, claimed.Caller, now, dbNow)
			return err
		}
		if ev == nil {
			return nil
		}
		applied, err = applyEvents(ctx, tx, []CallEvent{*ev}, nil, s.dbClock())
		return err
	})
	return verdict, due, applied, err
}

// confirmUnlimited is ConfirmDial in one round trip for an originate no
// limit applies to (its caller number has no per_second, its integration
// no dial rate), which writes nothing when it lets the dial go: the call,
// its config and its campaign's handling are read in one batch outside a
// transaction of its own. It decides only DialGo and DialStale; a
// cancel, a closed window, an expired claim or a limit is left to the
// transaction, which records it (decided false).
func (s *Store) confirmUnlimited(ctx context.Context, claimed Claimed, now time.Time, dialLost time.Duration) (verdict DialVerdict, decided bool, err error) {
	call := claimed.Call
	if claimed.Config.CallHandling.DialRate != nil || numberPaced(claimed.Caller, call.CallerID) {
		return "", false, nil
	}
	var after pipeline
	at := queueSendClock(&after, call, claimed.Caller) // the clock alone: the number is not paced
	calls, err := lockCalls(ctx, s.pool, []CallEvent{{IntegrationID: call.IntegrationID}}, []uuid.UUID{call.ID}, &after)
	if err != nil {
		return "", false, err
	}
	c := calls[call.ID]
	verdict, ev := judgeDial(c, call.Attempt, now, claimExpired(c, orTestClock(*at, s.dbClock()), dialLost))
	switch {
	case verdict == DialGo && c.policy.DialRate != nil:
		return "", false, nil // a dial rate set since the claim: the transaction takes its token
	case verdict == DialGo, ev == nil:
		return verdict, true, nil
	}
	return "", false, nil
}

// claimExpired reports whether c's slot was taken more than half of
// dialLost before dbNow, both by the database's clock.
func claimExpired(c *lockedCall, dbNow time.Time, dialLost time.Duration) bool {
	return dialLost > 0 && c != nil && c.SlotTakenAt != nil && dbNow.Sub(*c.SlotTakenAt) > dialLost/2
}

// judgeDial judges a claimed attempt of c (read under its lock) at now:
// DialGo when it is still the call's current dial, its claim has not
// expired and its window is open (its send limits are still to be taken),
// DialStale when it is no longer the call's, else the verdict with the
// event that records it.
func judgeDial(c *lockedCall, attempt int, now time.Time, expired bool) (DialVerdict, *CallEvent) {
	if c == nil || c.Attempt != attempt || c.DialState != dialStateDialing {
		return DialStale, nil
	}
	ev := CallEvent{IntegrationID: c.IntegrationID, CallID: c.ID, Attempt: c.Attempt, TraceID: deref(c.TraceID), At: now}
	switch {
	case c.Status == callstate.Cancelled && c.SlotTakenAt != nil:
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
		ev.Detail = map[string]any{"notSent": "cancelled before the originate"}
		return DialCancelled, &ev
	case c.Status != callstate.Initiated:
		return DialStale, nil
	case expired:
		ev.Event = callstate.Event{Kind: callstate.DialAborted}
		ev.Detail = map[string]any{"notSent": "claimed too long before the originate", "claimedAt": c.SlotTakenAt.UTC().Format(time.RFC3339Nano)}
		return DialExpired, &ev
	}
	opens, _ := windowOpensAt(c.policy.CallingWindow, c.PhoneNumber, deref(c.Timezone), c.agentTimezone, now)
	if !opens.After(now) {
		return DialGo, nil
	}
	ev.Event = callstate.Event{Kind: callstate.DialDeferred, RetryAfter: opens.Sub(now)}
	ev.Detail = map[string]any{"notSent": "calling window closed before the originate",
		"notBefore": opens.UTC().Format(time.RFC3339)}
	return DialWindowClosed, &ev
}

// queueSendClock queues, after the call's lock, the lock of the caller
// number the claim took (when it has a per_second: its originates
// serialise on it, replicas confirming dials of one integration without its
// row lock), then the read of the database's time the send limits are
// judged at. The lock is a statement of its own: a statement's snapshot
// predates the locks it takes, and the number's dials are read by the next.
func queueSendClock(p *pipeline, call Call, caller *config.CallerID) *time.Time {
	at := new(time.Time)
	scan := func(rows pgx.Rows) error { return rows.Scan(at) }
	if numberPaced(caller, call.CallerID) {
		p.query("lock caller number", scan, `SELECT clock_timestamp() FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 21))) AS locked`,
			call.IntegrationID.String()+":"+caller.Number)
	} else {
		p.query("read the database's clock", scan, `SELECT clock_timestamp()`)
	}
	return at
}

// numberPaced reports whether a dial from callerID is held to the
// per_second of caller, the number its claim took.
func numberPaced(caller *config.CallerID, callerID *string) bool {
	return caller != nil && callerID != nil && *callerID == caller.Number && caller.PerSecond > 0
}

// sendLimits judges an originate at the database's time at (read after the
// number's lock, queueSendClock): its caller number's per_second, then a
// token of the integration's dial rate. One that may not go yet is
// DialRateWait, with when to ask again on now's clock.
func sendLimits(ctx context.Context, tx pgx.Tx, c *lockedCall, caller *config.CallerID, now, at time.Time) (DialVerdict, time.Time, error) {
	perNumber := numberPaced(caller, c.CallerID)
	rate := c.policy.DialRate
	if !perNumber && rate == nil {
		return DialGo, time.Time{}, nil
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
