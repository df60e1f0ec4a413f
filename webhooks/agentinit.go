package webhooks

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/elevenlabs"
)

// ukrainianWeekdays are indexed by time.Weekday.
var ukrainianWeekdays = [...]string{"Неділя", "Понеділок", "Вівторок", "Середа", "Четвер", "П'ятниця", "Субота"}

// DateVariables are the date, time and Ukrainian weekday at t in loc.
func DateVariables(t time.Time, loc *time.Location) map[string]any {
	local := t.In(loc)
	return map[string]any{
		"today_is": local.Format("02.01.2006"),
		"time":     local.Format("15:04:05"),
		"weekday":  ukrainianWeekdays[local.Weekday()],
	}
}

// agentInit answers ElevenLabs' conversation-initiation webhook at once:
// date and time in the integration's timezone, the phone, the call's own
// dynamic variables and, within the deadline, the caller's CRM context.
// Whatever is slow or failing is left out; it never answers an error.
func (h *Handler) agentInit(ctx context.Context, r request) (int, any, error) {
	started := time.Now()
	req, err := DecodeAgentInit(r.body)
	if err != nil {
		return 0, nil, err
	}
	cfgCtx, cancel := context.WithTimeout(ctx, h.AgentInitDeadline)
	cfg := config.Decode(nil)
	if stored, err := h.store.Config(cfgCtx, r.in.ID); err == nil {
		cfg = stored
	} else {
		r.log.Warn().Err(err).Msg("agent-init: config unavailable, using defaults")
	}
	cancel()
	ctx, cancel = context.WithDeadline(ctx, started.Add(cfg.Agent.InitDeadline()))
	defer cancel()
	loc, err := time.LoadLocation(cfg.Agent.Timezone)
	if err != nil {
		loc = time.UTC
	}
	vars := DateVariables(h.now(), loc)
	phones := req.Phones()
	phone := ""
	if len(phones) > 0 {
		phone = phones[0]
	}
	var callVars map[string]any
	for _, p := range phones {
		raw, callID, err := h.store.ContextByPhone(ctx, r.in.ID, p)
		if err != nil {
			r.log.Warn().Err(err).Msg("agent-init: call lookup failed")
			break
		}
		if callID != uuid.Nil {
			phone = p
			_ = json.Unmarshal(raw, &callVars) // stored by us as an object
			vars["call_id"] = callID.String()
			break
		}
	}
	if phone != "" {
		vars["phone_number"] = phone
	}
	if h.enricher != nil && phone != "" {
		before := len(vars)
		h.enricher.Enrich(ctx, r.in.ID, phone, vars)
		source := "none"
		if len(vars) > before {
			source = "crm"
		}
		h.metrics.AgentInit.WithLabelValues(source).Inc()
	}
	for k, v := range callVars {
		vars[k] = v
	}
	answer := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: vars}
	if cfg.Agent.Override {
		answer.ConversationConfig = overrideFor(h.agentPrompt(ctx, r.in.ID), cfg.Agent)
	}
	return http.StatusOK, answer, nil
}

// overrideFor builds ElevenLabs' conversation_config_override.
func overrideFor(prompt string, a config.Agent) map[string]any {
	agent := map[string]any{}
	if prompt != "" {
		agent["prompt"] = map[string]any{"prompt": prompt}
	}
	if a.FirstMessage != "" {
		agent["first_message"] = a.FirstMessage
	}
	if a.Language != "" {
		agent["language"] = a.Language
	}
	if len(agent) == 0 {
		return nil
	}
	return map[string]any{"agent": agent}
}

func (h *Handler) agentPrompt(ctx context.Context, id uuid.UUID) string {
	in, err := h.store.GetIntegration(ctx, "", id)
	if err != nil || in.AgentPrompt == nil {
		return ""
	}
	return *in.AgentPrompt
}
