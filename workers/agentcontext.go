package workers

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/store"
)

// AgentContexter builds what the agent gets at the start of a call it is
// asked to dial without agent-init ever being called (callerctx.Cache).
type AgentContexter interface {
	ForDial(ctx context.Context, integrationID uuid.UUID, agent callerctx.Agent, now time.Time, phone string,
		callID uuid.UUID, callVars json.RawMessage) (elevenlabs.ClientData, bool)
}

// agentContext is the agent-init answer an ElevenLabs dial carries:
// ElevenLabs calls the conversation-initiation webhook for inbound calls
// only, so the outbound-call request itself must hold the date, the CRM
// context and the call's variables, or the agent talks without them (or
// fails the conversation when its prompt uses them). vars are the call's
// variables as dialled (the pre-dial check may have added some). nil for
// the others, which ask agent-init.
func (d *Dispatcher) agentContext(ctx context.Context, c store.Claimed, vars json.RawMessage) *elevenlabs.ClientData {
	if c.Config.Voice.Provider != config.ProviderElevenLabs {
		return nil
	}
	call := c.Call
	agent := callerctx.Agent{Config: c.Config.Agent, Fields: c.Config.CRMFields}
	if agent.Config.Override {
		// The prompt lives on the integration, not in its config.
		in, err := d.w.store.IntegrationByID(ctx, call.IntegrationID)
		switch {
		case err != nil:
			d.w.log.Warn().Err(err).Str("call_id", call.ID.String()).Msg("agent prompt unavailable; dialling without it")
		case in.AgentPrompt != nil:
			agent.Prompt = *in.AgentPrompt
		}
	}
	now := d.w.clock.Now()
	if contexter, ok := d.w.warmer.(AgentContexter); ok {
		answer, _ := contexter.ForDial(ctx, call.IntegrationID, agent, now, call.PhoneNumber, call.ID, vars)
		return &answer
	}
	answer := callerctx.Answer(now, agent, call.PhoneNumber,
		callerctx.Caller{CallID: call.ID.String(), CallVars: vars})
	return &answer
}

// rejectionDetail is the history entry of a refused dial: the error, and
// the conversation the platform opened before refusing, if any.
func rejectionDetail(err error) map[string]any {
	detail := map[string]any{"error": egress.Describe(err)}
	var rejected *dialer.RejectedError
	if errors.As(err, &rejected) && rejected.ConversationID != "" {
		detail["conversationId"] = rejected.ConversationID
	}
	return detail
}
