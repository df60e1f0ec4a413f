package service_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/callqueue/callqueue/store"
)

// TestDialRateHoldsAcrossReplicas queues 20 calls for an integration with
// dial_rate {per_second: 2, burst: 2} and a concurrency limit that never
// binds, served by two worker processes. The fake VA's own clock proves
// the rate: no one-second window holds more than burst + per_second
// originates, and the 20 take at least (20 - burst - per_second) / per_second seconds.
// Each call held back says so in its history once, not once per pass.
// (The rate is low enough that a loaded test machine's delay between an
// originate's token and its arrival at the VA cannot bunch two seconds'
// originates into one.)
func TestDialRateHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	const calls, perSecond, burst = 20, 2, 2
	c := startCluster(t, 2, clusterOptions{RealClock: true, CallHandling: map[string]any{"concurrency_limit": 1000,
		"dial_rate": map[string]any{"per_second": perSecond, "burst": burst}}})
	net := c.phoneNetwork(t, 1, 5)
	ids := c.originateMany(t, calls, 6)

	waitFor(t, 60*time.Second, "every call dialled", func() bool { return len(c.va.Requests()) >= calls },
		func() string { return fmt.Sprintf("%d originates", len(c.va.Requests())) })
	net.check(t)

	reqs := c.va.Requests()
	at := make([]time.Time, len(reqs))
	for i, r := range reqs {
		at[i] = r.At
	}
	slices.SortFunc(at, time.Time.Compare)
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		if n > burst+perSecond {
			t.Fatalf("%d originates in the second from %s; at most %d allowed", n, at[i].Format(time.StampMilli), burst+perSecond)
		}
	}
	// Originates whose tokens were burst + per_second apart may still arrive
	// a little closer; no more than a second's worth closer.
	if span, least := at[len(at)-1].Sub(at[0]), time.Duration(float64(calls-burst-perSecond)/perSecond*float64(time.Second)); span < least {
		t.Errorf("%d originates took %s; the rate allows no less than %s", calls, span, least)
	}

	held := 0
	for _, id := range ids {
		var detail struct {
			Events []store.CallEventRow `json:"events"`
		}
		if code := c.admin.Do("GET", "/api/calls/"+id.String(), nil, &detail); code != http.StatusOK {
			t.Fatalf("call %s: %d", id, code)
		}
		holds := 0
		for _, ev := range detail.Events {
			if ev.Kind == "deferred" && string(ev.Detail) != "" {
				if !jsonHas(ev.Detail, "deferred", "dial_rate") || !jsonHas(ev.Detail, "notBefore", "") {
					t.Errorf("call %s: hold %s, want deferred: dial_rate with notBefore", id, ev.Detail)
				}
				holds++
			}
		}
		if holds > 1 {
			t.Errorf("call %s has %d dial_rate holds in its history; a hold is written once", id, holds)
		}
		held += holds
	}
	if held == 0 {
		t.Error("no call's history says the dial rate held it")
	}
	deferred, dialling := 0.0, 0
	for _, w := range c.workers {
		deferred += metricValue(t, w.URL, "callqueue_dispatch_deferred_total", `reason="dial_rate"`)
		if metricValue(t, w.URL, "callqueue_dials_total", `result="accepted"`) > 0 {
			dialling++
		}
	}
	if int(deferred) != held {
		t.Errorf("callqueue_dispatch_deferred_total{reason=\"dial_rate\"} = %v, the histories hold %d", deferred, held)
	}
	if dialling < 2 {
		t.Errorf("%d of 2 worker processes dialled: the rate was not shared", dialling)
	}
}

// jsonHas reports whether the JSON object raw has key as a string, equal to
// want unless want is empty.
func jsonHas(raw json.RawMessage, key, want string) bool {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return false
	}
	v, ok := obj[key].(string)
	return ok && v != "" && (want == "" || v == want)
}
