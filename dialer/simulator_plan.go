package dialer

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
)

// Simulated outcomes, one per attempt, drawn by the simulator's weights.
const (
	SimAnswer   = "answer"    // answered, talked long enough: call_end "completed", then a post-call
	SimShort    = "short"     // answered and hung up within seconds: call_end "completed", short
	SimNoAnswer = "no_answer" // rang until the dialler gave up: call_end "no_answer"
	SimBusy     = "busy"      // busy tone: call_end "busy"
)

// Reported durations of the outcomes that have no configured range, in
// simulated seconds.
const (
	simShortMaxSecs    = 4  // a pick-up and hang-up
	simNoAnswerRing    = 30 // how long a dialler lets an unanswered phone ring
	simBusySecs        = 1  // how long a busy tone takes to be reported
	simPostcallLagSecs = 5  // an agent platform's analysis before its post-call webhook
)

// SimPlan is what one simulated attempt will do, in simulated (uncompressed)
// seconds from the originate.
type SimPlan struct {
	Outcome string
	// StartAfter is when call_start comes (answered outcomes only).
	StartAfter float64
	// EndAfter is when call_end comes.
	EndAfter float64
	// Duration is call_end's reported duration: the talk time, 0 when the
	// call was not answered.
	Duration int
	// Reason is call_end's reason.
	Reason string
	// PostcallAfter is when the post-call comes; 0 when none does.
	PostcallAfter float64
	// Script picks the generated conversation.
	Script int
}

// Answered reports whether the callee picked up.
func (p SimPlan) Answered() bool { return p.Outcome == SimAnswer || p.Outcome == SimShort }

// simRand is the random source of one attempt: a function of the seed, the
// call and the attempt when a seed is configured, so that a seeded run
// repeats attempt by attempt whatever order the dials happen in.
func simRand(cfg config.Simulator, callID uuid.UUID, attempt int) *rand.Rand {
	if cfg.Seed == nil {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) //nolint:gosec // G404: simulated outcomes, no secret
	}
	h := fnv.New64a()
	h.Write(callID[:])
	_ = binary.Write(h, binary.BigEndian, int64(attempt))
	return rand.New(rand.NewPCG(uint64(*cfg.Seed), h.Sum64())) //nolint:gosec // G404: reproducible on purpose
}

// PlanAttempt draws what one attempt of a call will do: with cfg.Seed set,
// always the same for the same seed, call and attempt.
func PlanAttempt(cfg config.Simulator, callID uuid.UUID, attempt int) SimPlan {
	return planWith(cfg, simRand(cfg, callID, attempt))
}

func planWith(cfg config.Simulator, rnd *rand.Rand) SimPlan {
	weights := []struct {
		outcome string
		w       float64
	}{{SimAnswer, cfg.Answer}, {SimShort, cfg.Short}, {SimNoAnswer, cfg.NoAnswer}, {SimBusy, cfg.Busy}}
	total := 0.0
	for _, w := range weights {
		total += w.w
	}
	// Draw every number in a fixed order, whatever the outcome, so that a
	// seed's outcomes do not shift when one weight changes.
	pick, ring, talk, short, script := rnd.Float64()*total, between(rnd, cfg.RingSecs), between(rnd, cfg.TalkSecs),
		1+rnd.IntN(simShortMaxSecs), rnd.IntN(len(simScripts))
	p := SimPlan{Outcome: SimAnswer, Script: script}
	for _, w := range weights {
		if w.w > 0 && pick < w.w {
			p.Outcome = w.outcome
			break
		}
		pick -= w.w
	}
	switch p.Outcome {
	case SimAnswer:
		p.StartAfter, p.Duration, p.Reason = float64(ring), talk, "completed"
		p.EndAfter = float64(ring + talk)
		p.PostcallAfter = p.EndAfter + simPostcallLagSecs
	case SimShort:
		p.StartAfter, p.Duration, p.Reason = float64(ring), short, "completed"
		p.EndAfter = float64(ring + short)
	case SimNoAnswer:
		p.EndAfter, p.Reason = simNoAnswerRing, "no_answer"
	case SimBusy:
		p.EndAfter, p.Reason = simBusySecs, "busy"
	}
	return p
}

// between draws a whole number of seconds in [r[0], r[1]].
func between(rnd *rand.Rand, r []int) int {
	if len(r) != 2 || r[1] <= r[0] {
		if len(r) > 0 {
			return r[0]
		}
		return 0
	}
	return r[0] + rnd.IntN(r[1]-r[0]+1)
}

// compress turns simulated seconds into wall time at speed.
func compress(secs, speed float64) time.Duration {
	if speed <= 0 {
		speed = 1
	}
	return time.Duration(secs / speed * float64(time.Second))
}
