package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Voice providers.
const (
	ProviderVA         = "va"
	ProviderElevenLabs = "elevenlabs"
	ProviderSimulator  = "simulator"
)

// Simulator configures the simulated dialler (voice.provider "simulator"):
// how often each outcome happens, how long calls ring and talk, and how much
// faster than real time they are played. It dials nobody and needs no
// secret, so a new deployment shows calls moving through every state.
type Simulator struct {
	// Outcome weights, relative to each other: answered and long enough,
	// answered but short, not answered, busy.
	Answer   float64 `json:"answer"`
	Short    float64 `json:"short"`
	NoAnswer float64 `json:"no_answer"`
	Busy     float64 `json:"busy"`
	// TalkSecs and RingSecs are [min, max] of the reported durations.
	TalkSecs []int `json:"talk_secs"`
	RingSecs []int `json:"ring_secs"`
	// Speed compresses time: 10 plays a 60-second call in 6 seconds. The
	// reported durations are not compressed.
	Speed float64 `json:"speed"`
	// Seed, when set, makes every attempt's outcome and durations a
	// function of the seed and the attempt (for tests and demos that repeat).
	Seed *int64 `json:"seed,omitempty"`
}

// Simulator bounds (422 outside them).
const (
	SimulatorMaxTalkSecs = 86400
	SimulatorMaxRingSecs = 600
	SimulatorMinSpeed    = 0.01
	SimulatorMaxSpeed    = 100000
)

// SimulatorDefaults is the simulator's configuration when the voice config
// names the provider and nothing else.
func SimulatorDefaults() Simulator {
	return Simulator{Answer: 0.6, Short: 0.1, NoAnswer: 0.2, Busy: 0.1,
		TalkSecs: []int{20, 120}, RingSecs: []int{2, 8}, Speed: 10}
}

// simulatorFields are the voice config's fields that belong to the simulator.
var simulatorFields = []string{"answer", "short", "no_answer", "busy", "talk_secs", "ring_secs", "speed", "seed"}

// voiceProvider reads the provider a voice value names ("" when none).
func voiceProvider(raw json.RawMessage) string {
	var probe struct {
		Provider string `json:"provider"`
	}
	_ = json.Unmarshal(raw, &probe) // not an object: the typed decode reports it
	return probe.Provider
}

// simulatorFieldIn names the first simulator field raw carries, if any.
func simulatorFieldIn(raw json.RawMessage) string {
	obj, ok := asObject(raw)
	if !ok {
		return ""
	}
	for _, f := range simulatorFields {
		if _, given := obj[f]; given {
			return f
		}
	}
	return ""
}

func validateSimulator(s Simulator) error {
	weights := []struct {
		field string
		w     float64
	}{{"answer", s.Answer}, {"short", s.Short}, {"no_answer", s.NoAnswer}, {"busy", s.Busy}}
	sum := 0.0
	for _, w := range weights {
		if !(w.w >= 0 && w.w <= 1) { // written so that NaN is refused too
			return &FieldError{Field: w.field, Message: "must be a weight between 0 and 1"}
		}
		sum += w.w
	}
	if sum == 0 {
		return &FieldError{Field: "answer", Message: "answer, short, no_answer and busy must not all be 0"}
	}
	if err := validateRange("talk_secs", s.TalkSecs, SimulatorMaxTalkSecs); err != nil {
		return err
	}
	if err := validateRange("ring_secs", s.RingSecs, SimulatorMaxRingSecs); err != nil {
		return err
	}
	if !(s.Speed >= SimulatorMinSpeed && s.Speed <= SimulatorMaxSpeed) || math.IsInf(s.Speed, 0) {
		return &FieldError{Field: "speed", Message: fmt.Sprintf("must be between %g and %g", float64(SimulatorMinSpeed), float64(SimulatorMaxSpeed))}
	}
	return nil
}

func validateRange(field string, r []int, maxSecs int) error {
	if len(r) != 2 {
		return &FieldError{Field: field, Message: "must be [min, max] in seconds"}
	}
	if r[0] < 0 || r[1] > maxSecs || r[0] > r[1] {
		return &FieldError{Field: field, Message: fmt.Sprintf("must be [min, max] with 0 <= min <= max <= %d", maxSecs)}
	}
	return nil
}

// decodeVoice decodes a voice value over the defaults; a simulator config
// starts from SimulatorDefaults, so each of its fields may be left out.
func decodeVoice(raw json.RawMessage, v *Voice, strict bool, dec func(any) error) error {
	if voiceProvider(raw) == ProviderSimulator {
		sim := SimulatorDefaults()
		v.Simulator = &sim
	}
	if err := dec(v); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			// encoding/json names a promoted field by its embedded struct.
			fe.Field = strings.TrimPrefix(fe.Field, "Simulator.")
		}
		return err
	}
	if err := normalizeCallerIDs(v, strict); err != nil {
		return err
	}
	if !strict {
		*v = v.clampedCallerIDs()
	}
	if v.Provider != ProviderSimulator {
		if f := simulatorFieldIn(raw); strict && f != "" {
			return &FieldError{Field: f, Message: `applies only to provider "simulator"`}
		}
		v.Simulator = nil
	}
	if !strict {
		return nil
	}
	return validateVoice(*v)
}
