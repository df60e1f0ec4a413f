package callerctx

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

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

// ukrainianWeekdays are indexed by time.Weekday; held as interface values,
// so that no answer allocates one.
var ukrainianWeekdays = [...]any{"Неділя", "Понеділок", "Вівторок", "Середа", "Четвер", "П'ятниця", "Субота"}

// dateVariables is how many variables addDateVariables sets.
const dateVariables = 3

// addDateVariables sets the date, time and Ukrainian weekday at t in loc.
func addDateVariables(vars map[string]any, t time.Time, loc *time.Location) {
	local := t.In(loc)
	// Both from one formatting, in one string.
	var buf [32]byte
	dateTime := string(local.AppendFormat(buf[:0], "02.01.2006 15:04:05"))
	space := strings.IndexByte(dateTime, ' ')
	vars["today_is"], vars["time"] = dateTime[:space], dateTime[space+1:]
	vars["weekday"] = ukrainianWeekdays[local.Weekday()]
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
	var callVars []variable
	if caller.CallID != "" {
		var small [16]variable
		callVars = callVariables(caller.CallVars, small[:0])
	}
	// Sized for every variable to come, so that it is not grown while filled.
	vars := make(map[string]any, dateVariables+len(agent.Fields)+len(caller.Vars)+2+len(callVars))
	addDateVariables(vars, now, loc)
	for ours := range agent.Fields {
		if name, ok := crm.VariableName(ours); ok {
			setVariable(vars, name, "")
		}
	}
	for k, v := range caller.Vars {
		setVariable(vars, k, v)
	}
	vars["phone_number"] = phone
	if caller.CallID != "" {
		vars["call_id"] = caller.CallID
		for _, v := range callVars {
			setVariable(vars, v.name, v.value)
		}
	}
	answer := elevenlabs.ClientData{Type: elevenlabs.ClientDataType, DynamicVariables: vars}
	if agent.Config.Override {
		answer.ConversationConfig = overrideFor(agent.Prompt, agent.Config)
	}
	return answer
}

// setVariable sets one of the agent's variables: a system__ name is
// ElevenLabs' own and never sent, and a nested value goes as its JSON text.
// phone_number and call_id are set directly: none of this applies to them.
func setVariable(vars map[string]any, name string, v any) {
	if strings.HasPrefix(name, elevenlabs.SystemVariablePrefix) {
		return
	}
	switch v.(type) {
	case nil, string, bool, float64, json.Number, int, int64:
	default:
		text, _ := json.Marshal(v)
		v = string(text)
	}
	vars[name] = v
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

// variable is one of a call's own variables.
type variable struct {
	name  string
	value any
}

// callVariables appends a call's own variables, stored by us as an
// object; numbers are kept exactly as given (an order id above 2^53 is not
// a float). A repeated name comes as often as it is given, the last value
// last.
func callVariables(raw json.RawMessage, members []variable) []variable {
	if flat, ok := flatVariables(string(raw), members); ok {
		return flat
	}
	var decoded map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&decoded)
	for k, v := range decoded {
		members = append(members, variable{k, v})
	}
	return members
}

// flatVariables appends the members of s as a json.Decoder with UseNumber
// reads them into a map[string]any, in their order, when s is a flat
// object, as calls' variables are: strings without escapes, numbers, true,
// false and null, in valid UTF-8. Names and texts are slices of s. ok is
// false for anything else, which is left to the decoder.
func flatVariables(s string, members []variable) (_ []variable, ok bool) {
	if !utf8.ValidString(s) {
		return members, false
	}
	i := skipSpace(s, 0)
	if i == len(s) || s[i] != '{' {
		return members, false
	}
	if i = skipSpace(s, i+1); i < len(s) && s[i] == '}' {
		return members, true
	}
	for {
		name, next, ok := plainString(s, i)
		if !ok {
			return members, false
		}
		if i = skipSpace(s, next); i == len(s) || s[i] != ':' {
			return members, false
		}
		var value any
		if value, i, ok = flatValue(s, skipSpace(s, i+1)); !ok {
			return members, false
		}
		members = append(members, variable{name, value})
		// The decoder reads the object alone: what follows it is not looked at.
		switch i = skipSpace(s, i); {
		case i == len(s):
			return members, false
		case s[i] == '}':
			return members, true
		case s[i] != ',':
			return members, false
		}
		i = skipSpace(s, i+1)
	}
}

// flatValue reads the string, number or literal at s[i:] and where it ends.
func flatValue(s string, i int) (value any, end int, ok bool) {
	if i == len(s) {
		return nil, i, false
	}
	switch c := s[i]; {
	case c == '"':
		text, end, ok := plainString(s, i)
		return text, end, ok
	case c == '-' || '0' <= c && c <= '9':
		end = i + 1
		for end < len(s) && strings.IndexByte("0123456789+-.eE", s[end]) >= 0 {
			end++
		}
		// Made of these characters, valid JSON is a number.
		if !json.Valid([]byte(s[i:end])) {
			return nil, i, false
		}
		return json.Number(s[i:end]), end, true
	}
	for _, literal := range [...]struct {
		text  string
		value any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(s[i:], literal.text) {
			return literal.value, i + len(literal.text), true
		}
	}
	return nil, i, false
}

// plainString reads the string at s[i:] when it has no escapes (nor the
// control characters JSON does not allow in one): its text is s's.
func plainString(s string, i int) (text string, end int, ok bool) {
	if i == len(s) || s[i] != '"' {
		return "", i, false
	}
	for end = i + 1; end < len(s); end++ {
		switch c := s[end]; {
		case c == '"':
			return s[i+1 : end], end + 1, true
		case c == '\\' || c < ' ':
			return "", i, false
		}
	}
	return "", i, false
}

// skipSpace skips JSON's white space from s[i].
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}
