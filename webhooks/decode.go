package webhooks

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/pgtext"
)

// OriginateRequest is a decoded call-originate body.
type OriginateRequest struct {
	PhoneNumber      string
	RecordID         string
	DynamicVariables json.RawMessage
	Priority         int
	// Timezone is the recipient's IANA zone, for "recipient" calling windows.
	Timezone string
}

// phonePattern accepts E.164-like numbers: an optional +, 5 to 20 digits.
var phonePattern = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// normalizePhone strips the separators people type ("+38 (099) 482-95-73").
func normalizePhone(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '(', ')', '.':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// DecodeOriginate validates a call-originate body.
func DecodeOriginate(body []byte) (OriginateRequest, error) {
	var raw struct {
		PhoneNumber      *string         `json:"phone_number"`
		RecordID         json.RawMessage `json:"record_id"`
		DynamicVariables json.RawMessage `json:"dynamic_variables"`
		Priority         *int            `json:"priority"`
		Timezone         *string         `json:"timezone"`
	}
	if err := decodeStrict(body, &raw); err != nil {
		return OriginateRequest{}, err
	}
	var out OriginateRequest
	if raw.PhoneNumber == nil || strings.TrimSpace(*raw.PhoneNumber) == "" {
		return out, jsonhttp.Invalid("phone_number", "phone_number is required")
	}
	out.PhoneNumber = normalizePhone(*raw.PhoneNumber)
	if !phonePattern.MatchString(out.PhoneNumber) {
		return out, jsonhttp.Invalid("phone_number", "phone_number must be a phone number: an optional + and 5 to 20 digits")
	}
	id, err := scalarString(raw.RecordID)
	if err != nil || len(id) > 200 {
		return out, jsonhttp.Invalid("record_id", "record_id must be a string or number of at most 200 characters")
	}
	out.RecordID = id
	if vars := bytes.TrimSpace(raw.DynamicVariables); len(vars) > 0 && !bytes.Equal(vars, []byte("null")) {
		if vars[0] != '{' {
			return out, jsonhttp.Invalid("dynamic_variables", "dynamic_variables must be an object")
		}
		if name := systemVariable(vars); name != "" {
			return out, jsonhttp.Invalid("dynamic_variables."+name,
				"dynamic_variables may not name %s: names starting with system__ are ElevenLabs' own", name)
		}
		out.DynamicVariables = vars
	}
	if raw.Priority != nil {
		if *raw.Priority < -100 || *raw.Priority > 100 {
			return out, jsonhttp.Invalid("priority", "priority must be between -100 and 100")
		}
		out.Priority = *raw.Priority
	}
	if raw.Timezone != nil {
		if !config.ValidTimezone(*raw.Timezone) {
			return out, jsonhttp.Invalid("timezone", "timezone must be an IANA time zone name such as Europe/Kyiv")
		}
		out.Timezone = *raw.Timezone
	}
	return out, nil
}

// systemVariable returns the first (sorted) name in the object vars that
// starts with ElevenLabs' reserved system__ prefix, cut to 64 bytes; ""
// when there is none. ElevenLabs refuses a conversation that sets one.
func systemVariable(vars json.RawMessage) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(vars, &obj) != nil {
		return ""
	}
	var names []string
	for name := range obj {
		if strings.HasPrefix(name, elevenlabs.SystemVariablePrefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	name := slices.Min(names)
	if len(name) > 64 {
		name = strings.ToValidUTF8(name[:64], "")
	}
	return name
}

// decodeStrict is jsonhttp.Decode that also refuses what follows the
// object: jsonhttp.Decode's d.More() check misses a trailing '}' or ']'
// (`{"phone_number":"+380991111111"}}` would be accepted).
func decodeStrict(body []byte, dst any) error {
	if err := jsonhttp.Decode(body, dst); err != nil {
		return err
	}
	if !json.Valid(body) {
		return jsonhttp.BadRequest("", "body must hold a single JSON object")
	}
	return nil
}

// scalarString reads a JSON string or number as a string ("" for absent or null).
// raw is a value of a document that decoded, so it is valid JSON.
func scalarString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	// Most ids are plain strings or numbers: read without the decoder.
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), nil // a number's text is what json.Number keeps
	case c == '"' && plainString(raw[1:len(raw)-1]):
		return strings.TrimSpace(string(raw[1 : len(raw)-1])), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return strings.TrimSpace(s), nil
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// plainString reports whether a JSON string's content decodes to itself:
// no escapes, no control characters, valid UTF-8 (the decoder replaces
// invalid bytes).
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 {
			return false
		}
	}
	return utf8.Valid(b)
}

// CallEventRequest is a decoded call-events body.
type CallEventRequest struct {
	EventType      string
	CallID         string
	ConversationID string
	DurationSecs   *float64
	Reason         string
	Metadata       json.RawMessage
}

var eventTypes = []string{"call_start", "call_end", "media_start", "media_end"}

// endReasons are call_end's reasons (contract §4).
var endReasons = []string{"completed", "no_answer", "busy", "voicemail", "failed"}

// DecodeCallEvent validates a call-events body. Unknown fields are
// tolerated: the dialler adds fields over time.
func DecodeCallEvent(body []byte) (CallEventRequest, error) {
	var raw struct {
		EventType      *string         `json:"eventType"`
		CallID         json.RawMessage `json:"callId"`
		ConversationID json.RawMessage `json:"conversation_id"`
		Duration       json.RawMessage `json:"duration"`
		Reason         json.RawMessage `json:"reason"`
		Metadata       json.RawMessage `json:"metadata"`
	}
	if err := jsonhttp.DecodeLenient(body, &raw); err != nil {
		return CallEventRequest{}, err
	}
	var out CallEventRequest
	if raw.EventType == nil || *raw.EventType == "" {
		return out, jsonhttp.Invalid("eventType", "eventType is required")
	}
	out.EventType = *raw.EventType
	valid := false
	for _, t := range eventTypes {
		valid = valid || t == out.EventType
	}
	if !valid {
		return out, jsonhttp.Invalid("eventType", "eventType must be one of %s", strings.Join(eventTypes, ", "))
	}
	id, err := scalarString(raw.CallID)
	if err != nil || id == "" || len(id) > 200 {
		return out, jsonhttp.Invalid("callId", "callId is required: our call id or the dialler's, at most 200 characters")
	}
	out.CallID = id
	conv, err := scalarString(raw.ConversationID)
	if err != nil || len(conv) > 200 {
		return out, jsonhttp.Invalid("conversation_id", "conversation_id must be a string of at most 200 characters")
	}
	out.ConversationID = conv
	if d := bytes.TrimSpace(raw.Duration); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		s, err := scalarString(d)
		f, perr := strconv.ParseFloat(s, 64)
		// Written so that NaN ("duration": "NaN" parses) is out of range too.
		if err != nil || perr != nil || !(f >= 0 && f <= 86400) {
			return out, jsonhttp.Invalid("duration", "duration must be a number of seconds between 0 and 86400")
		}
		out.DurationSecs = &f
	}
	reason, err := scalarString(raw.Reason)
	if err != nil || (reason != "" && !slices.Contains(endReasons, reason)) {
		return out, jsonhttp.Invalid("reason", "reason must be one of %s", strings.Join(endReasons, ", "))
	}
	out.Reason = reason
	if m := bytes.TrimSpace(raw.Metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		if m[0] != '{' {
			return out, jsonhttp.Invalid("metadata", "metadata must be an object")
		}
		out.Metadata = m
	}
	return out, nil
}

// AgentInitRequest is a decoded agent-init body: the seed's {phone_number}
// or ElevenLabs' {caller_id, agent_id, called_number, call_sid}.
type AgentInitRequest struct {
	PhoneNumber  string `json:"phone_number"`
	CallerID     string `json:"caller_id"`
	AgentID      string `json:"agent_id"`
	CalledNumber string `json:"called_number"`
	CallSID      string `json:"call_sid"`
}

// Phones lists the numbers to look the caller up by, most specific first.
func (r AgentInitRequest) Phones() []string {
	var out []string
	for _, p := range []string{r.PhoneNumber, r.CallerID, r.CalledNumber} {
		if p = normalizePhone(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// DecodeAgentInit reads an agent-init body leniently. It answers the
// agent synchronously and keeps nothing, so text Postgres cannot store is
// dropped (pgtext.CleanJSON) rather than refused.
func DecodeAgentInit(body []byte) (AgentInitRequest, error) {
	var r AgentInitRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return r, nil
	}
	err := jsonhttp.DecodeLenient(pgtext.CleanJSON(body), &r)
	return r, err
}
