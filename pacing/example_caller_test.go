package pacing_test

import (
	"fmt"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/pacing"
	"github.com/callqueue/callqueue/phone"
)

// A recipient in San Francisco is dialled from the pool's 415 number while
// it is under its limits; once it has its one live call, from the other US
// number; once every number is at a limit, the call waits.
func ExamplePickCaller() {
	pool := []config.CallerID{
		{Number: "+442079460000", ConcurrencyLimit: 1},
		{Number: "+12125550100", ConcurrencyLimit: 1},
		{Number: "+14155550100", ConcurrencyLimit: 1},
	}
	usage := make([]pacing.CallerUsage, len(pool))
	to := pacing.Recipient{Locality: phone.LocalityOf("+14155559876")}
	now := time.Date(2026, 1, 21, 12, 0, 0, 0, time.UTC)
	for range 4 {
		choice := pacing.PickCaller(pool, usage, config.CallerLocal, false, to, now)
		if choice.Index < 0 {
			fmt.Println("held: every number at a limit:", choice.PoolBusy)
			break
		}
		fmt.Println("dial from", pool[choice.Index].Number)
		usage[choice.Index].Use(now, int64(choice.Index+1))
	}
	// Output:
	// dial from +14155550100
	// dial from +12125550100
	// dial from +442079460000
	// held: every number at a limit: true
}
