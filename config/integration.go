package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Keys of the per-integration configuration that callqueue itself reads.
const (
	KeyCallHandling = "call_handling"
	KeyVoice        = "voice"
	KeyCRMFields    = "crm_fields"
	KeyCRM          = "crm"
	KeyAgent        = "agent"
)

// KnownKeys lists the validated keys, in the order they are shown.
var KnownKeys = []string{KeyCallHandling, KeyVoice, KeyCRMFields, KeyCRM, KeyAgent}

// CallHandling governs dialling: the concurrency limit, what counts as a
// short call, and the retry schedule.
type CallHandling struct {
	ConcurrencyLimit    int            `json:"concurrency_limit"`
	MinCallDurationSecs int            `json:"min_call_duration_secs"`
	MaxAttempts         int            `json:"max_attempts"`
	RetryDelaysSecs     []int          `json:"retry_delays_secs"`
	MaxCallDurationSecs int            `json:"max_call_duration_secs"`
	CallingWindow       *CallingWindow `json:"calling_window"`
	RetryPolicy         *RetryPolicy   `json:"retry_policy,omitempty"`
	// Pacing and contact rules (contract §9); unset: no limit.
	DialRate         *DialRate    `json:"dial_rate,omitempty"`
	ContactCaps      []ContactCap `json:"contact_caps,omitempty"`
	ContactCapsScope string       `json:"contact_caps_scope,omitempty"`
}

// RetryDelay is the wait after the given (1-based) failed attempt; the last
// configured delay repeats when there are more attempts than delays.
func (c CallHandling) RetryDelay(attempt int) time.Duration {
	if len(c.RetryDelaysSecs) == 0 {
		return 0
	}
	i := min(max(attempt-1, 0), len(c.RetryDelaysSecs)-1)
	return retryDelay(c.RetryDelaysSecs[i])
}

// CallingWindow is the part of the week in which calls may be dialled.
type CallingWindow struct {
	Timezone string `json:"timezone"`
	Start    string `json:"start"`
	End      string `json:"end"`
	Days     []int  `json:"days"`
	// ExcludeDates are YYYY-MM-DD dates (holidays) on which nothing is
	// dialled, read in the window's zone.
	ExcludeDates []string `json:"exclude_dates,omitempty"`
}

// locations caches loaded timezones: time.LoadLocation reads the tz
// database from disk on every call, and agent-init needs one per request.
var locations sync.Map

// Location is time.LoadLocation, cached.
func Location(name string) (*time.Location, error) {
	if loc, ok := locations.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, loc)
	return loc, nil
}

// Open reports whether t falls inside the window. A nil window is always open.
func (w *CallingWindow) Open(t time.Time) bool {
	if w == nil {
		return true
	}
	loc, err := Location(w.Timezone)
	if err != nil {
		return false
	}
	local := t.In(loc)
	weekday := int(local.Weekday())
	if weekday == 0 {
		weekday = 7 // ISO: Sunday is 7
	}
	if len(w.Days) > 0 && !slices.Contains(w.Days, weekday) || w.excluded(local) {
		return false
	}
	now := local.Format("15:04")
	if w.Start <= w.End {
		return now >= w.Start && now < w.End
	}
	return now >= w.Start || now < w.End // window across midnight
}

// Voice selects and configures the dialler.
type Voice struct {
	Provider    string `json:"provider"`
	BaseURL     string `json:"base_url"`
	SipID       string `json:"sip_id"`
	AssistantID string `json:"assistant_id"`
	// ElevenLabs dialler settings (provider "elevenlabs").
	AgentID            string `json:"agent_id,omitempty"`
	AgentPhoneNumberID string `json:"agent_phone_number_id,omitempty"`
	Via                string `json:"via,omitempty"`
	// RingTimeoutSecs is how long ElevenLabs lets the callee's phone ring
	// (telephony_call_config.ringing_timeout_secs; 0: RingTimeoutDefault).
	RingTimeoutSecs int `json:"ring_timeout_secs,omitempty"`
	// CallerIDs is the pool of numbers dials are made from (contract §9);
	// empty: the trunk's or agent's own number.
	CallerIDs []CallerID `json:"caller_ids,omitempty"`
	// CallerIDStrategy picks a number of the pool for each dial (""
	// means local).
	CallerIDStrategy string `json:"caller_id_strategy,omitempty"`
	// RotateOnRetry makes a retry prefer a number the recipient has not
	// been dialled from.
	RotateOnRetry bool `json:"rotate_on_retry,omitempty"`
	// Simulator settings (provider "simulator"); nil for the others.
	*Simulator
}

// RingTimeoutDefault is voice.ring_timeout_secs when it is not set.
const RingTimeoutDefault = 45

// RingTimeoutMax bounds voice.ring_timeout_secs: Twilio rings for at most
// 600 seconds.
const RingTimeoutMax = 600

// RingTimeout is how long the callee's phone rings, in seconds.
func (v Voice) RingTimeout() int {
	if v.RingTimeoutSecs <= 0 {
		return RingTimeoutDefault
	}
	return v.RingTimeoutSecs
}

// Complete reports whether the dialler has the settings it needs, apart from
// its secret.
func (v Voice) Complete() bool {
	switch v.Provider {
	case ProviderVA:
		return v.BaseURL != "" && v.SipID != ""
	case ProviderElevenLabs:
		return v.AgentID != "" && v.AgentPhoneNumberID != "" // base_url defaults to the public API
	case ProviderSimulator:
		return v.Simulator != nil
	}
	return false
}

// The names of the secrets diallers authenticate with.
const (
	SecretVAAuthToken      = "VA_AUTH_TOKEN"      //nolint:gosec // a secret's name, not its value
	SecretElevenLabsAPIKey = "ELEVENLABS_API_KEY" //nolint:gosec // a secret's name, not its value
)

// DiallerSecretKeys lists every key SecretKey may return.
var DiallerSecretKeys = []string{SecretVAAuthToken, SecretElevenLabsAPIKey}

// SecretKey is the secret the dialler authenticates with; "" when it needs
// none (the simulator).
func (v Voice) SecretKey() string {
	switch v.Provider {
	case ProviderElevenLabs:
		return SecretElevenLabsAPIKey
	case ProviderSimulator:
		return ""
	}
	return SecretVAAuthToken
}

// CRMFields maps callqueue's names (phone, name, company, source, status and
// any extra) to the CRM's field names.
type CRMFields map[string]string

// CRM selects the CRM adapter.
type CRM struct {
	Kind      string `json:"kind"`
	FolderID  string `json:"folder_id,omitempty"`
	BaseURL   string `json:"base_url,omitempty"`
	LookupURL string `json:"lookup_url,omitempty"`
	UpdateURL string `json:"update_url,omitempty"`
	// StatusValues maps outcomes to the labels the CRM's status field
	// takes (a NetHunt dropdown's options); an outcome without one is
	// written as its name.
	StatusValues map[string]string `json:"status_values,omitempty"`
	// CallLog also writes the CRM's own call log for each finished call.
	CallLog bool `json:"call_log,omitempty"`
}

// Agent holds what the voice agent's context is rendered with.
type Agent struct {
	Timezone string `json:"timezone"`
	Locale   string `json:"locale"`
	// InitDeadlineMS bounds agent-init's answer; CRM context that is not
	// there in time is left out (0: AgentInitDeadlineDefault).
	InitDeadlineMS int `json:"init_deadline_ms,omitempty"`
	// Override, when set, sends conversation_config_override: the
	// integration's agentPrompt, FirstMessage and Language.
	Override     bool   `json:"override,omitempty"`
	FirstMessage string `json:"first_message,omitempty"`
	Language     string `json:"language,omitempty"`
}

// AgentInitDeadlineDefault is agent-init's default answer deadline.
const AgentInitDeadlineDefault = 1500 * time.Millisecond

// InitDeadline is the agent-init deadline.
func (a Agent) InitDeadline() time.Duration {
	if a.InitDeadlineMS <= 0 {
		return AgentInitDeadlineDefault
	}
	return time.Duration(a.InitDeadlineMS) * time.Millisecond
}

// Defaults returns a fresh copy of every known key's default value.
func Defaults() map[string]any {
	return map[string]any{
		KeyCallHandling: CallHandling{
			ConcurrencyLimit: 3, MinCallDurationSecs: 5, MaxAttempts: 3,
			RetryDelaysSecs: []int{300, 900, 3600}, MaxCallDurationSecs: 1800,
		},
		KeyVoice:     Voice{Provider: "va"},
		KeyCRMFields: CRMFields{"phone": "Phone", "name": "Name", "company": "Company", "source": "Source", "status": "Status"},
		KeyCRM:       CRM{Kind: "none"},
		KeyAgent:     Agent{Timezone: TimezoneDefault, Locale: "uk-UA"},
	}
}

// FieldError is a bad value of one field; Field is its JSON path.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// IsKnown reports whether key is validated by Normalize.
func IsKnown(key string) bool { return slices.Contains(KnownKeys, key) }

// Normalize validates raw as the value of key and returns it with defaults
// filled in. Unknown keys are free-form and only need to be valid JSON.
func Normalize(key string, raw json.RawMessage) (json.RawMessage, error) {
	switch key {
	case KeyPredial:
		return normalizePredial(raw)
	case KeyData:
		return normalizeData(raw)
	}
	if !IsKnown(key) {
		if !json.Valid(raw) {
			return nil, &FieldError{Field: "", Message: "value must be valid JSON"}
		}
		return raw, nil
	}
	v, err := decodeKnown(key, raw, true)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// decodeKnown decodes raw over key's default. strict rejects unknown fields
// and validates values; stored values are read leniently.
func decodeKnown(key string, raw json.RawMessage, strict bool) (any, error) {
	def := Defaults()[key]
	dec := func(dst any) error {
		if strict {
			if err := checkSingleValue(raw); err != nil {
				return err
			}
			if err := checkKnownFields(key, raw); err != nil {
				return err
			}
		}
		if err := json.NewDecoder(bytes.NewReader(raw)).Decode(dst); err != nil {
			return decodeFieldError(err)
		}
		return nil
	}
	switch key {
	case KeyCallHandling:
		v := def.(CallHandling)
		v.RetryDelaysSecs = nil
		if err := dec(&v); err != nil {
			return nil, err
		}
		if v.RetryDelaysSecs == nil {
			v.RetryDelaysSecs = def.(CallHandling).RetryDelaysSecs
		}
		if strict {
			return v, validateCallHandling(v)
		}
		return v.clamped().clampedPacing(), nil
	case KeyVoice:
		v := def.(Voice)
		if err := decodeVoice(raw, &v, strict, dec); err != nil {
			return nil, err
		}
		return v, nil
	case KeyCRMFields:
		v := def.(CRMFields)
		var in map[string]json.RawMessage
		if err := dec(&in); err != nil {
			return nil, err
		}
		for k, f := range in {
			var name string
			if err := json.Unmarshal(f, &name); err != nil {
				if strict {
					return nil, &FieldError{Field: k, Message: "must be a string"}
				}
				continue
			}
			v[k] = name
		}
		if strict {
			for k, f := range v {
				if strings.TrimSpace(f) == "" {
					return nil, &FieldError{Field: k, Message: "must name a CRM field"}
				}
			}
		}
		return v, nil
	case KeyCRM:
		v := def.(CRM)
		if err := dec(&v); err != nil {
			return nil, err
		}
		if strict {
			return v, validateCRM(v)
		}
		return v, nil
	case KeyAgent:
		v := def.(Agent)
		if err := dec(&v); err != nil {
			return nil, err
		}
		if strict {
			if !ValidTimezone(v.Timezone) {
				return nil, &FieldError{Field: "timezone", Message: "unknown timezone " + fmt.Sprintf("%q", v.Timezone)}
			}
			if v.InitDeadlineMS < 0 || v.InitDeadlineMS > 10000 {
				return nil, &FieldError{Field: "init_deadline_ms", Message: "must be between 0 and 10000"}
			}
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown config key %q", key)
}

// checkSingleValue rejects input with anything after its JSON value.
func checkSingleValue(raw json.RawMessage) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	var skip json.RawMessage
	if err := d.Decode(&skip); err != nil {
		return &FieldError{Field: "", Message: "value must be valid JSON: " + err.Error()}
	}
	if _, err := d.Token(); err != io.EOF {
		return &FieldError{Field: "", Message: "value must be a single JSON value"}
	}
	return nil
}

// knownFields lists each struct-valued key's fields, by JSON path prefix.
var knownFields = map[string][]string{
	KeyCallHandling: {"concurrency_limit", "min_call_duration_secs", "max_attempts", "retry_delays_secs",
		"max_call_duration_secs", "calling_window", "retry_policy", "dial_rate", "contact_caps", "contact_caps_scope"},
	KeyCallHandling + ".calling_window": {"timezone", "start", "end", "days", "exclude_dates"},
	KeyCallHandling + ".dial_rate":      {"per_second", "burst"},
	KeyVoice: append([]string{"provider", "base_url", "sip_id", "assistant_id", "agent_id", "agent_phone_number_id", "via", "ring_timeout_secs",
		"caller_ids", "caller_id_strategy", "rotate_on_retry"}, simulatorFields...),
	// Fields of each element of an array are listed under its path and "[]".
	KeyVoice + ".caller_ids[]": {"number", "sip_id", "agent_phone_number_id", "concurrency_limit", "per_second", "max_per_hour", "max_per_day"},
	KeyCRM:                     {"kind", "folder_id", "base_url", "lookup_url", "update_url", "status_values", "call_log"},
	KeyAgent:                   {"timezone", "locale", "init_deadline_ms", "override", "first_message", "language"},
}

func asObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	err := json.Unmarshal(raw, &obj)
	return obj, err == nil
}

// checkKnownFields rejects fields a key does not have, naming their path.
func checkKnownFields(key string, raw json.RawMessage) error {
	var check func(scope, path string, raw json.RawMessage) error
	check = func(scope, path string, raw json.RawMessage) error {
		allowed, ok := knownFields[scope]
		if !ok {
			return nil
		}
		obj, isObject := asObject(raw)
		if !isObject {
			return nil // the typed decode reports what it is instead
		}
		for name, v := range obj {
			if !slices.Contains(allowed, name) {
				return &FieldError{Field: path + name, Message: "unknown field"}
			}
			if err := check(scope+"."+name, path+name+".", v); err != nil {
				return err
			}
			var items []json.RawMessage
			if _, ok := knownFields[scope+"."+name+"[]"]; ok && json.Unmarshal(v, &items) == nil {
				for i, item := range items {
					if err := check(scope+"."+name+"[]", fmt.Sprintf("%s%s[%d].", path, name, i), item); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	return check(key, "", raw)
}

func decodeFieldError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &FieldError{Field: typeErr.Field, Message: "must be " + jsonKind(typeErr.Type.Kind().String())}
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return &FieldError{Field: strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), Message: "unknown field"}
	}
	return &FieldError{Field: "", Message: "value must be valid JSON: " + err.Error()}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "float64":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "of another type"
}

var clock = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)

func validateCallHandling(v CallHandling) error {
	if err := checkCallHandlingBounds(v); err != nil {
		return err
	}
	if err := validateRetryPolicy(v.RetryPolicy); err != nil {
		return err
	}
	if err := validatePacing(v); err != nil {
		return err
	}
	if w := v.CallingWindow; w != nil {
		if !ValidTimezone(w.Timezone) && w.Timezone != RecipientTimezone {
			return &FieldError{Field: "calling_window.timezone", Message: `unknown timezone (an IANA name or "recipient")`}
		}
		if !clock.MatchString(w.Start) {
			return &FieldError{Field: "calling_window.start", Message: "must be HH:MM"}
		}
		if !clock.MatchString(w.End) || w.End == w.Start {
			return &FieldError{Field: "calling_window.end", Message: "must be HH:MM, different from start"}
		}
		for i, d := range w.Days {
			if d < 1 || d > 7 {
				return &FieldError{Field: fmt.Sprintf("calling_window.days[%d]", i), Message: "must be an ISO weekday 1..7"}
			}
		}
	}
	return nil
}

func validateURL(field, raw string, required bool) error {
	if raw == "" {
		if required {
			return &FieldError{Field: field, Message: "is required"}
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &FieldError{Field: field, Message: "must be an http(s) URL"}
	}
	return nil
}

func validateVoice(v Voice) error {
	switch v.Provider {
	case ProviderVA:
		return validateURL("base_url", v.BaseURL, false)
	case ProviderElevenLabs:
		if v.Via != "" && v.Via != "sip_trunk" && v.Via != "twilio" {
			return &FieldError{Field: "via", Message: `must be "sip_trunk" or "twilio"`}
		}
		if v.RingTimeoutSecs < 0 || v.RingTimeoutSecs > RingTimeoutMax {
			return &FieldError{Field: "ring_timeout_secs", Message: fmt.Sprintf("must be between 1 and %d (0: %d)", RingTimeoutMax, RingTimeoutDefault)}
		}
		return validateURL("base_url", v.BaseURL, false)
	case ProviderSimulator:
		return validateSimulator(*v.Simulator)
	}
	return &FieldError{Field: "provider", Message: `must be "va", "elevenlabs" or "simulator"`}
}

// Integration is an integration's decoded configuration: stored values over
// defaults for every known key.
type Integration struct {
	CallHandling CallHandling
	Voice        Voice
	CRMFields    CRMFields
	CRM          CRM
	Agent        Agent
	// Raw holds every stored key, known or not, as given.
	Raw map[string]json.RawMessage
}

// Decode builds the effective configuration from stored key values.
// Stored values were validated on write, so they are read leniently.
func Decode(stored map[string]json.RawMessage) Integration {
	out := Integration{Raw: stored}
	get := func(key string) any {
		if raw, ok := stored[key]; ok {
			if v, err := decodeKnown(key, raw, false); err == nil {
				return v
			}
		}
		return Defaults()[key]
	}
	out.CallHandling = get(KeyCallHandling).(CallHandling)
	out.Voice = get(KeyVoice).(Voice)
	out.CRMFields = get(KeyCRMFields).(CRMFields)
	out.CRM = get(KeyCRM).(CRM)
	out.Agent = get(KeyAgent).(Agent)
	return out
}

// Effective returns every known key (defaults filled in) plus the stored
// free-form keys, as the API shows them.
func (c Integration) Effective() map[string]any {
	out := map[string]any{
		KeyCallHandling: c.CallHandling, KeyVoice: c.Voice, KeyCRMFields: c.CRMFields,
		KeyCRM: c.CRM, KeyAgent: c.Agent,
	}
	for k, v := range c.Raw {
		if !IsKnown(k) {
			out[k] = v
		}
	}
	return out
}
