package config

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Pacing rules of call_handling and calling_window (contract §9): what
// carriers and regulators impose on how often the integration dials.

// DialRate is call_handling.dial_rate: the most originates per second the
// integration sends, with a burst.
type DialRate struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst,omitempty"`
}

// Bounds of dial_rate.
const (
	DialRateMin  = 0.01
	DialRateMax  = 1000
	DialBurstMax = 1000
)

// Capacity is the bucket's size: burst, or one second's worth (at least
// one) when burst is not set.
func (r DialRate) Capacity() float64 {
	if r.Burst > 0 {
		return float64(min(r.Burst, DialBurstMax))
	}
	return min(max(math.Ceil(r.PerSecond), 1), DialBurstMax)
}

// ContactCap is one of call_handling.contact_caps: at most MaxDials dials
// to one number within a rolling window of Days days.
type ContactCap struct {
	MaxDials int `json:"max_dials"`
	Days     int `json:"days"`
}

// Window is the cap's rolling window.
func (c ContactCap) Window() time.Duration { return time.Duration(c.Days) * 24 * time.Hour }

// Scopes of contact caps: the integration's dials, or every integration's
// of the owner.
const (
	ContactCapsIntegration = "integration"
	ContactCapsOwner       = "owner"
)

// Bounds of contact caps and excluded dates.
const (
	ContactCapsMax      = 5
	ContactCapDaysMax   = 365
	ContactCapDialsMax  = 1000
	ExcludeDatesMax     = 366
	excludeDateLayout   = time.DateOnly
	contactCapsScopeDef = ContactCapsIntegration
)

// CapsScope is contact_caps_scope with its default.
func (c CallHandling) CapsScope() string {
	if c.ContactCapsScope == "" {
		return contactCapsScopeDef
	}
	return c.ContactCapsScope
}

// LongestCapWindow is the longest rolling window of the contact caps (0
// without caps): dials older than it count for none.
func (c CallHandling) LongestCapWindow() time.Duration {
	var longest time.Duration
	for _, cp := range c.ContactCaps {
		longest = max(longest, cp.Window())
	}
	return longest
}

func validatePacing(v CallHandling) error {
	if r := v.DialRate; r != nil {
		if r.PerSecond < DialRateMin || r.PerSecond > DialRateMax || math.IsNaN(r.PerSecond) {
			return &FieldError{Field: "dial_rate.per_second", Message: fmt.Sprintf("must be between %g and %d", DialRateMin, DialRateMax)}
		}
		if r.Burst != 0 {
			if err := between("dial_rate.burst", r.Burst, 1, DialBurstMax); err != nil {
				return err
			}
		}
	}
	if len(v.ContactCaps) > ContactCapsMax {
		return &FieldError{Field: "contact_caps", Message: fmt.Sprintf("must list at most %d caps", ContactCapsMax)}
	}
	for i, cp := range v.ContactCaps {
		if err := between(fmt.Sprintf("contact_caps[%d].max_dials", i), cp.MaxDials, 1, ContactCapDialsMax); err != nil {
			return err
		}
		if err := between(fmt.Sprintf("contact_caps[%d].days", i), cp.Days, 1, ContactCapDaysMax); err != nil {
			return err
		}
	}
	switch v.ContactCapsScope {
	case "", ContactCapsIntegration, ContactCapsOwner:
	default:
		return &FieldError{Field: "contact_caps_scope", Message: `must be "integration" or "owner"`}
	}
	if w := v.CallingWindow; w != nil {
		if len(w.ExcludeDates) > ExcludeDatesMax {
			return &FieldError{Field: "calling_window.exclude_dates", Message: fmt.Sprintf("must list at most %d dates", ExcludeDatesMax)}
		}
		for i, d := range w.ExcludeDates {
			if _, err := time.Parse(excludeDateLayout, d); err != nil {
				return &FieldError{Field: fmt.Sprintf("calling_window.exclude_dates[%d]", i), Message: "must be a date YYYY-MM-DD"}
			}
		}
	}
	return nil
}

// clampedPacing drops stored pacing values outside their bounds, as
// clamped does for the rest of call_handling.
func (c CallHandling) clampedPacing() CallHandling {
	if r := c.DialRate; r != nil {
		if math.IsNaN(r.PerSecond) {
			c.DialRate = nil
		} else {
			c.DialRate = &DialRate{PerSecond: min(max(r.PerSecond, DialRateMin), DialRateMax), Burst: min(max(r.Burst, 0), DialBurstMax)}
		}
	}
	caps := make([]ContactCap, 0, min(len(c.ContactCaps), ContactCapsMax))
	for _, cp := range c.ContactCaps[:min(len(c.ContactCaps), ContactCapsMax)] {
		caps = append(caps, ContactCap{MaxDials: min(max(cp.MaxDials, 1), ContactCapDialsMax), Days: min(max(cp.Days, 1), ContactCapDaysMax)})
	}
	if len(caps) == 0 {
		caps = nil
	}
	c.ContactCaps = caps
	return c
}

// excluded reports whether the local date of t (in t's location) is one
// of the window's excluded dates.
func (w *CallingWindow) excluded(t time.Time) bool {
	return len(w.ExcludeDates) > 0 && slices.Contains(w.ExcludeDates, t.Format(excludeDateLayout))
}

// WithoutExcludedDates is the window with its weekly pattern only: what
// tells a wait for an excluded date from one for the window's hours.
func (w *CallingWindow) WithoutExcludedDates() *CallingWindow {
	if w == nil || len(w.ExcludeDates) == 0 {
		return w
	}
	plain := *w
	plain.ExcludeDates = nil
	return &plain
}
