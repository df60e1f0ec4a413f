package store

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
)

// keepReport stores a post-call's report on its call without moving it:
// the transcript and analysis of the attempt the call is still on.
func (cs *changeSet) keepReport(c *Call, ev CallEvent) {
	p := ev.Postcall
	if len(p.Transcript) > 0 {
		c.Transcript = p.Transcript
	}
	if len(p.Analysis) > 0 {
		c.Analysis = p.Analysis
	}
	if len(p.Metadata) > 0 {
		c.Metadata = p.Metadata
	}
	if p.Summary != "" {
		c.Summary = &p.Summary
	}
	c.UpdatedAt = ev.At
	cs.touch(c)
}

// touch makes flush write c's row.
func (cs *changeSet) touch(c *Call) {
	if _, seen := cs.calls[c.ID]; !seen {
		cs.order = append(cs.order, c.ID)
	}
	cs.calls[c.ID] = c
}

// queueAnalysis queues the LLM's analysis of a post-call of the call's
// current attempt, whatever the call's state: what the person said counts
// (a do_not_call above all) even when the call was short or failed.
func (cs *changeSet) queueAnalysis(c *lockedCall, ev CallEvent) {
	if c.hasLLM && len(ev.Postcall.Transcript) > 0 && (ev.Attempt == 0 || ev.Attempt == c.Attempt) {
		// A call that keeps no content (data.store) holds it here until
		// the analysis is settled.
		transcript, agentAnalysis := c.analysisContent()
		cs.analyses = append(cs.analyses, []any{c.ID, c.IntegrationID, c.Attempt, ev.At, transcript, agentAnalysis,
			nullable(ev.Traceparent)})
	}
}

// honourDoNotCall applies a post-call's do_not_call whatever the state of
// its call (contract §7): the number is suppressed for the integration and
// a call that could still be dialled again is cancelled with outcome
// suppressed (a live one keeps its slot until it ends, as any cancel).
func (cs *changeSet) honourDoNotCall(c *lockedCall, ev CallEvent) {
	if ev.Postcall == nil || !requestsDoNotCall(ev.Postcall.Analysis) {
		return
	}
	if !slices.Contains(cs.doNotCall, c.ID) {
		cs.doNotCall = append(cs.doNotCall, c.ID)
	}
	cs.cancelSuppressed(c, ev.IntegrationID, ev.At)
}

// cancelSuppressed cancels a call that is not terminal because its number
// asked not to be called.
func (cs *changeSet) cancelSuppressed(c *lockedCall, integration uuid.UUID, at time.Time) {
	if c.Status.Terminal() {
		return
	}
	cancel := CallEvent{IntegrationID: integration, CallID: c.ID, Attempt: c.Attempt, At: at,
		Event:  callstate.Event{Kind: callstate.Cancel, Reason: callstate.OutcomeSuppressed},
		Detail: map[string]any{"suppression": SuppressionReasonRequested}}
	d := callstate.Next(c.decisionInput(), cancel.Event, c.policy, at)
	if d.Changed {
		cs.record(&c.Call, cancel, d)
	}
}
