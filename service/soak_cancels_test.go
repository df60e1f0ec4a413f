package service_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// soakCancel is an operator's cancel callqueue acknowledged: a call's, or
// every call of a campaign.
type soakCancel struct {
	call     uuid.UUID
	campaign uuid.UUID
	at       time.Time
}

// cancelCall is the operator's cancel of one call; an acknowledged one is
// recorded for the checker. Safe from any goroutine.
func (w *soakWorld) cancelCall(id uuid.UUID) int {
	code, _ := w.adminDo("POST", "/api/calls/"+id.String()+"/cancel", nil, nil)
	switch code {
	case http.StatusOK:
		w.mu.Lock()
		w.cancels = append(w.cancels, soakCancel{call: id, at: time.Now()})
		w.mu.Unlock()
	case 0, http.StatusConflict, http.StatusNotFound, http.StatusServiceUnavailable, http.StatusInternalServerError:
		// Not found: not stored yet; 5xx or none: the database was cut.
	default:
		w.t.Errorf("cancel %s: %d", id, code)
	}
	return code
}

// cancelAtStage cancels a call chosen by where it is: queued, claimed and
// in its pre-dial check or dial, talking, waiting for its post-call, or
// waiting for a retry; a campaign's calls included.
func (w *soakWorld) cancelAtStage() {
	rows, err := w.c.callsErr()
	if err != nil {
		return
	}
	byStage := map[string][]uuid.UUID{}
	for id, r := range rows {
		if !callstate.Status(r.Status).Terminal() {
			byStage[r.Status] = append(byStage[r.Status], id)
		}
	}
	stages := make([]string, 0, len(byStage))
	for s := range byStage {
		stages = append(stages, s)
	}
	if len(stages) == 0 {
		return
	}
	slices.Sort(stages)
	stage := stages[w.rng.IntN(len(stages))]
	ids := byStage[stage]
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	w.cancelCall(ids[w.rng.IntN(len(ids))])
	w.fault("cancel " + stage)
}

// checkCancels: cancel means never dialled again. After a cancel was
// acknowledged, the VA received no dial of a later attempt, and none of
// the cancelled attempt either when the call was waiting (queued, or for a
// retry) or when its pre-dial check was answered only after the cancel:
// the dial is confirmed after that answer. A claimed call whose dial was
// confirmed before the cancel may still be dialled; it then finishes its
// conversation.
func (w *soakWorld) checkCancels(histories func(uuid.UUID) []store.CallEventRow) {
	t := w.t
	dials := map[uuid.UUID][]struct {
		attempt int
		at      time.Time
	}{}
	for _, o := range w.va.Requests() {
		id, attempt, ok := callstate.ParseAttemptCallID(o.CallID)
		if ok {
			dials[id] = append(dials[id], struct {
				attempt int
				at      time.Time
			}{attempt, o.At})
		}
	}
	campaignCalls := map[uuid.UUID][]uuid.UUID{}
	for _, c := range w.cancels {
		if c.campaign == uuid.Nil {
			continue
		}
		rows, err := w.c.env.Store.Pool().Query(context.Background(), `SELECT id FROM calls WHERE campaign_id = $1`, c.campaign)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			campaignCalls[c.campaign] = append(campaignCalls[c.campaign], id)
		}
		rows.Close()
	}
	judged := 0
	for _, c := range w.cancels {
		ids := []uuid.UUID{c.call}
		if c.campaign != uuid.Nil {
			ids = campaignCalls[c.campaign]
		}
		for _, id := range ids {
			h := histories(id)
			i := slices.IndexFunc(h, func(e store.CallEventRow) bool {
				return e.ToStatus != nil && *e.ToStatus == string(callstate.Cancelled)
			})
			if i < 0 {
				if c.campaign == uuid.Nil {
					t.Errorf("call %s: its cancel was acknowledged, but it never became cancelled: %s", id, describeHistory(h))
				}
				continue // the call was over when its campaign was cancelled
			}
			cancel := h[i]
			from := ""
			if cancel.FromStatus != nil {
				from = *cancel.FromStatus
			}
			waiting := from == string(callstate.Queued) || from == string(callstate.RetryScheduled)
			judged++
			for _, d := range dials[id] {
				if !d.at.After(c.at) {
					continue
				}
				switch {
				case d.attempt > cancel.Attempt:
					t.Errorf("call %s: attempt %d dialled %s after its cancel was acknowledged (cancelled from %s at attempt %d): %s",
						id, d.attempt, d.at.Sub(c.at).Round(time.Millisecond), from, cancel.Attempt, describeHistory(h))
				case d.attempt == cancel.Attempt && waiting:
					t.Errorf("call %s: attempt %d dialled %s after its cancel was acknowledged while it waited (%s): %s",
						id, d.attempt, d.at.Sub(c.at).Round(time.Millisecond), from, describeHistory(h))
				case d.attempt == cancel.Attempt && w.predial.answeredAfter(id, d.attempt, c.at):
					t.Errorf("call %s: attempt %d dialled %s after its cancel was acknowledged during its pre-dial check: %s",
						id, d.attempt, d.at.Sub(c.at).Round(time.Millisecond), describeHistory(h))
				}
			}
		}
	}
	t.Logf("%d acknowledged cancels (%d calls judged) against the VA's dial times", len(w.cancels), judged)
}
