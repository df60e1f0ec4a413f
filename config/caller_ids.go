package config

import (
	"fmt"
	"math"
	"strings"

	"github.com/callqueue/callqueue/phone"
)

// CallerID is one of voice.caller_ids: a number the integration dials
// from, with its own limits (contract §9). Unset limits do not bind.
type CallerID struct {
	Number string `json:"number"`
	// SipID is the VA trunk the number belongs to (else voice.sip_id).
	SipID string `json:"sip_id,omitempty"`
	// AgentPhoneNumberID is ElevenLabs' id of the number (else
	// voice.agent_phone_number_id).
	AgentPhoneNumberID string `json:"agent_phone_number_id,omitempty"`
	// ConcurrencyLimit bounds the number's live calls.
	ConcurrencyLimit int `json:"concurrency_limit,omitempty"`
	// PerSecond bounds its dials in any second (below one: one dial in
	// 1/PerSecond seconds).
	PerSecond float64 `json:"per_second,omitempty"`
	// MaxPerHour and MaxPerDay cap its dials in rolling windows, below the
	// volumes carriers' analytics flag as spam.
	MaxPerHour int `json:"max_per_hour,omitempty"`
	MaxPerDay  int `json:"max_per_day,omitempty"`
}

// Caller id strategies: how each dial takes a number of the pool.
const (
	// CallerLocal: a number with the recipient's country and area code,
	// else the same country, else any.
	CallerLocal = "local"
	// CallerRoundRobin: each number in turn.
	CallerRoundRobin = "round_robin"
	// CallerLeastUsed: the number with the fewest dials in the last hour.
	CallerLeastUsed = "least_used"
	// CallerSticky: the number the recipient was dialled from before.
	CallerSticky = "sticky"
)

// CallerIDStrategies lists the strategies, the default first.
var CallerIDStrategies = []string{CallerLocal, CallerRoundRobin, CallerLeastUsed, CallerSticky}

// Bounds of the caller number pool.
const (
	CallerIDsMax              = 500
	CallerConcurrencyMax      = 1000
	CallerPerSecondMin        = 0.01
	CallerPerSecondMax        = 1000
	CallerMaxPerHourMax       = 100_000
	CallerMaxPerDayMax        = 1_000_000
	callerIDTextMax           = 128
	callerIDStrategyDefault   = CallerLocal
	callerIDFieldPrefix       = "caller_ids"
	callerIDStrategyFieldName = "caller_id_strategy"
)

// CallerStrategy is voice.caller_id_strategy with its default.
func (v Voice) CallerStrategy() string {
	if v.CallerIDStrategy == "" {
		return callerIDStrategyDefault
	}
	return v.CallerIDStrategy
}

// PerSecondWindow is the sliding window the number's per_second limit is
// counted over, and how many dials it allows in it: a second and
// floor(per_second) dials, or, below one a second, one dial in
// 1/per_second seconds. Zero without a limit.
func (c CallerID) PerSecondWindow() (window float64, dials int) {
	switch {
	case c.PerSecond <= 0:
		return 0, 0
	case c.PerSecond < 1:
		return 1 / c.PerSecond, 1
	}
	return 1, int(math.Floor(c.PerSecond))
}

// normalizeCallerIDs writes the pool's numbers in E.164 and, strictly,
// validates it: every field within its bounds, no number twice. Fields are
// named by their path in the voice value (caller_ids[3].number).
func normalizeCallerIDs(v *Voice, strict bool) error {
	if strict {
		if len(v.CallerIDs) > CallerIDsMax {
			return &FieldError{Field: callerIDFieldPrefix, Message: fmt.Sprintf("must list at most %d numbers", CallerIDsMax)}
		}
		switch v.CallerIDStrategy {
		case "", CallerLocal, CallerRoundRobin, CallerLeastUsed, CallerSticky:
		default:
			return &FieldError{Field: callerIDStrategyFieldName,
				Message: `must be "` + strings.Join(CallerIDStrategies, `", "`) + `"`}
		}
	}
	seen := make(map[string]int, len(v.CallerIDs))
	for i := range v.CallerIDs {
		c := &v.CallerIDs[i]
		field := func(name string) string { return fmt.Sprintf("%s[%d].%s", callerIDFieldPrefix, i, name) }
		number, err := phone.Normalize(c.Number, "")
		if err != nil {
			if strict {
				return &FieldError{Field: field("number"), Message: "must be a phone number with its country code (E.164)"}
			}
			continue
		}
		c.Number = number
		if !strict {
			continue
		}
		if j, dup := seen[number]; dup {
			return &FieldError{Field: field("number"), Message: fmt.Sprintf("repeats caller_ids[%d]", j)}
		}
		seen[number] = i
		if err := validateCallerID(*c, field); err != nil {
			return err
		}
	}
	return nil
}

func validateCallerID(c CallerID, field func(string) string) error {
	if len(c.SipID) > callerIDTextMax || strings.ContainsAny(c.SipID, "/?#") {
		return &FieldError{Field: field("sip_id"), Message: fmt.Sprintf("must be at most %d characters, without / ? #", callerIDTextMax)}
	}
	if len(c.AgentPhoneNumberID) > callerIDTextMax {
		return &FieldError{Field: field("agent_phone_number_id"), Message: fmt.Sprintf("must be at most %d characters", callerIDTextMax)}
	}
	if c.ConcurrencyLimit != 0 {
		if err := between(field("concurrency_limit"), c.ConcurrencyLimit, 1, CallerConcurrencyMax); err != nil {
			return err
		}
	}
	if c.PerSecond != 0 && !(c.PerSecond >= CallerPerSecondMin && c.PerSecond <= CallerPerSecondMax) {
		return &FieldError{Field: field("per_second"), Message: fmt.Sprintf("must be between %g and %d", CallerPerSecondMin, CallerPerSecondMax)}
	}
	if c.MaxPerHour != 0 {
		if err := between(field("max_per_hour"), c.MaxPerHour, 1, CallerMaxPerHourMax); err != nil {
			return err
		}
	}
	if c.MaxPerDay != 0 {
		if err := between(field("max_per_day"), c.MaxPerDay, 1, CallerMaxPerDayMax); err != nil {
			return err
		}
	}
	return nil
}

// clampedCallerIDs keeps a stored pool within its bounds, as clamped does
// for call_handling: unreadable numbers are dropped, limits brought within
// their ranges (a negative one: no limit), an unknown strategy is local.
func (v Voice) clampedCallerIDs() Voice {
	pool := make([]CallerID, 0, min(len(v.CallerIDs), CallerIDsMax))
	for _, c := range v.CallerIDs {
		if len(pool) == CallerIDsMax {
			break
		}
		if !strings.HasPrefix(c.Number, "+") {
			continue
		}
		c.ConcurrencyLimit = min(max(c.ConcurrencyLimit, 0), CallerConcurrencyMax)
		if math.IsNaN(c.PerSecond) || c.PerSecond <= 0 {
			c.PerSecond = 0
		} else {
			c.PerSecond = min(max(c.PerSecond, CallerPerSecondMin), CallerPerSecondMax)
		}
		c.MaxPerHour = min(max(c.MaxPerHour, 0), CallerMaxPerHourMax)
		c.MaxPerDay = min(max(c.MaxPerDay, 0), CallerMaxPerDayMax)
		pool = append(pool, c)
	}
	v.CallerIDs = pool
	if len(pool) == 0 {
		v.CallerIDs = nil
	}
	switch v.CallerIDStrategy {
	case "", CallerLocal, CallerRoundRobin, CallerLeastUsed, CallerSticky:
	default:
		v.CallerIDStrategy = ""
	}
	return v
}
