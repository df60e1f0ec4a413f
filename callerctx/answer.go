package callerctx

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/elevenlabs"
)

// Agent is what the answer to a conversation's start needs about the
// integration.
type Agent struct {
	Config config.Agent
	// Prompt is the integration's agentPrompt.
	Prompt string
	// Fields maps CRM fields to the agent's variables.
	Fields config.CRMFields
}

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

// Answer is what ElevenLabs gets at the start of a conversation — from
// agent-init for a call it asks about, in the outbound-call request for a
// call it dials (it never asks about those): the date, time and weekday in
// the agent's timezone, phone_number, every variable the CRM mapping
// defines (from the caller's CRM record, "" when unknown: ElevenLabs
// refuses a conversation that lacks a variable its agent uses), the call's
// id and own variables, and the integration's prompt, first message and
// language when overrides are on. ElevenLabs' system__ names are never
// sent, and a nested value goes as its JSON text (only scalars are taken).
func Answer(now time.Time, agent Agent, phone string, caller Caller) elevenlabs.ClientData {
	loc, err := config.Location(agent.Config.Timezone)
	if err != nil {
		loc = time.UTC
	}
	vars := DateVariables(now, loc)
	for _, name := range crm.VariableNames(agent.Fields) {
		vars[name] = ""
	}
	for k, v := range caller.Vars {
		vars[k] = v
	}
	vars["phone_number"] = phone
	if caller.CallID != "" {
		vars["call_id"] = caller.CallID
		// Stored by us as an object; numbers kept exactly as given (an
		// order id above 2^53 is not a float).
		var callVars map[string]any
		dec := json.NewDecoder(bytes.NewReader(caller.CallVars))
		dec.UseNumber()
		_ = dec.Decode(&callVars)
		for k, v := range callVars {
			vars[k] = v
		}
	}
	for k, v := range vars {
		switch {
		case strings.HasPrefix(k, elevenlabs.SystemVariablePrefix):
			delete(vars, k)
		case v == nil:
		default:
			switch v.(type) {
			case string, bool, float64, json.Number, int, int64:
			default:
				text, _ := json.Marshal(v)
				vars[k] = string(text)
			}
		}
	}
	answer := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: vars}
	if agent.Config.Override {
		answer.ConversationConfig = overrideFor(agent.Prompt, agent.Config)
	}
	return answer
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

// ForDial is Answer for a call about to be dialled: the caller's CRM
// context is taken as agent-init takes it — from the shared cache, else by
// joining the lookup the dial's warm-up started, else from the CRM through
// its breaker — within the same deadline; what is not there in time is
// sent as "". ok reports whether CRM context was had.
func (c *Cache) ForDial(ctx context.Context, integrationID uuid.UUID, agent Agent, now time.Time, phone string,
	callID uuid.UUID, callVars json.RawMessage) (answer elevenlabs.ClientData, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, agent.Config.InitDeadline())
	defer cancel()
	known, ok := c.Context(ctx, integrationID, phone)
	caller := Caller{Vars: known.Vars, CallID: callID.String(), CallVars: callVars}
	return Answer(now, agent, phone, caller), ok
}
