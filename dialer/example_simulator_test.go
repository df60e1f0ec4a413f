package dialer_test

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/dialer"
)

// With a seed, what the simulator plays for each attempt of a call is
// fixed: a test or a demo can rely on it. The times are simulated seconds
// after the originate; at speed 10 each takes a tenth of that.
func ExamplePlanAttempt() {
	seed := int64(7)
	cfg := config.SimulatorDefaults()
	cfg.Seed = &seed
	call := uuid.MustParse("018f6b52-7c1e-7a8e-9d4f-3c2b1a0f9e8d")
	for attempt := 1; attempt <= 3; attempt++ {
		p := dialer.PlanAttempt(cfg, call, attempt)
		fmt.Printf("attempt %d: %s, call_end %q after %gs reporting %ds", attempt, p.Outcome, p.Reason, p.EndAfter, p.Duration)
		if p.PostcallAfter > 0 {
			fmt.Printf(", post-call after %gs", p.PostcallAfter)
		}
		fmt.Println()
	}
	// Output:
	// attempt 1: answer, call_end "completed" after 116s reporting 110s, post-call after 121s
	// attempt 2: busy, call_end "busy" after 1s reporting 0s
	// attempt 3: short, call_end "completed" after 7s reporting 3s
}
