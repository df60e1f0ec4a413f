package webhooks

import (
	"context"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/elevenlabs"
)

// agentInit answers ElevenLabs' conversation-initiation webhook at once
// (callerctx.Answer, as an ElevenLabs dial sends it): date and time in the
// integration's timezone, the phone, the call's own dynamic variables and,
// within the deadline, the caller's CRM context.
// A warmed outbound call is answered from the shared cache alone; whatever
// is slow or failing is left out. It never answers an error.
func (h *Handler) agentInit(ctx context.Context, r request) (int, any, error) {
	start := time.Now()
	req, err := DecodeAgentInit(r.body)
	if err != nil {
		return 0, nil, err
	}
	agent := r.in.Agent
	ctx, cancel := context.WithTimeout(ctx, agent.InitDeadline())
	defer cancel()
	phones := req.Phones()
	var caller callerctx.Caller
	source := "none"
	phone := ""
	lookupFailed := false
	// A call warmed when it was dialled is answered from the shared cache
	// alone. Only the cache is read here, for every phone ElevenLabs gives:
	// for an outbound call caller_id is our own line, and asking the CRM
	// about it would spend the deadline before the callee is looked at.
	if cache, ok := h.enricher.(cacheReader); ok {
		for _, p := range phones {
			if c, ok := cache.Cached(ctx, r.in.ID, p); ok && c.CallID != "" {
				caller, source, phone = c, "cache", p
				break
			}
		}
	}
	if caller.CallID == "" {
		// Not warmed: find the caller's call in the database, which also says
		// which phone is the caller's; then their CRM context, for that phone
		// only (joining the dial's lookup if it is still under way).
		for _, p := range phones {
			raw, callID, err := h.store.ContextByPhone(ctx, r.in.ID, p)
			if err != nil {
				r.log(zerolog.WarnLevel).Err(err).Msg("agent-init: call lookup failed")
				lookupFailed = true
				break
			}
			if callID != uuid.Nil {
				phone, caller.CallID, caller.CallVars = p, callID.String(), raw
				break
			}
		}
		if phone == "" && len(phones) > 0 {
			phone = phones[0]
		}
		if h.enricher != nil && phone != "" {
			if c, ok := h.enricher.Context(ctx, r.in.ID, phone); ok {
				caller.Vars = c.Vars
				if caller.CallID == "" {
					caller.CallID, caller.CallVars = c.CallID, c.CallVars
				}
				if c.CallID != "" || len(c.Vars) > 0 {
					source = "crm"
				}
			}
		}
	}
	h.metrics.AgentInitAnswered(r.in.ID.String(), source, fallbackReason(ctx, source, len(phones), caller.CallID, lookupFailed), time.Since(start))
	answer := callerctx.Answer(h.now(), callerctx.Agent{Config: agent, Prompt: r.in.AgentPrompt, Fields: r.in.CRMFields},
		phone, caller)
	return http.StatusOK, encodedAnswer(answer), nil
}

// encodedAnswer is answer as jsonhttp.WriteJSON writes it, encoded without
// reflection. One that encoding/json refuses (a NaN, which no JSON decodes
// to) is left to the general writer, to answer as it always did.
func encodedAnswer(answer elevenlabs.ClientData) any {
	body, err := answer.AppendJSON(make([]byte, 0, 512))
	if err != nil {
		return answer
	}
	return encodedJSON(append(body, '\n'))
}

// cacheReader is an Enricher that can answer from its shared cache alone
// (callerctx.Cache).
type cacheReader interface {
	Cached(ctx context.Context, integrationID uuid.UUID, phone string) (callerctx.Caller, bool)
}

// fallbackReason says why an agent-init answer carries no caller context
// ("" when it has some): the deadline ran out, the call lookup failed, no
// phone was given, no call matched it, or the CRM had nothing.
func fallbackReason(ctx context.Context, source string, phones int, callID string, lookupFailed bool) string {
	switch {
	case source != "none":
		return ""
	case ctx.Err() != nil:
		return "deadline"
	case lookupFailed:
		return "lookup_failed"
	case phones == 0:
		return "no_phone"
	case callID == "":
		return "no_call"
	default:
		return "crm_empty"
	}
}
