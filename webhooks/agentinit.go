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
	ctx, cancel := context.WithTimeout(ctx, h.AgentInitDeadline)
	defer cancel()
	req, err := DecodeAgentInit(r.body)
	if err != nil {
		return 0, nil, err
	}
	cfg := config.Decode(nil)
	if stored, err := h.store.Config(ctx, r.in.ID); err == nil {
		cfg = stored
	} else {
		r.log.Warn().Err(err).Msg("agent-init: config unavailable, using defaults")
	}
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
		h.enricher.Enrich(ctx, r.in.ID, phone, vars)
	}
	for k, v := range callVars {
		vars[k] = v
	}
	return http.StatusOK, elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: vars}, nil
}
