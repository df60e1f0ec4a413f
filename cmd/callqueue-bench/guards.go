package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/store"
)

// guardRounds is how many times each configuration is measured; the order
// alternates so that drift of the machine's load falls on both alike.
const guardRounds = 4

// intakeGuards measures what the anonymous-traffic guards cost intake: two
// webhooks processes on one world, one with the rate limits (at rates that
// cannot bind: their cost, not their refusals) and the unverified body
// budget at its default, one with neither, measured in
// alternation on call-events (token: the limits) and signed post-calls
// (the limits and the body budget).
func (b *bench) intakeGuards(ctx context.Context) error {
	w, err := b.newWorld(ctx, "intake_guards")
	if err != nil {
		return err
	}
	defer w.close()
	saved := *b
	defer func() { b.rateLimits, b.unverifiedBodyBytes = saved.rateLimits, saved.unverifiedBodyBytes }()
	b.rateLimits, b.unverifiedBodyBytes = unbindingLimits(), 0
	guarded, in, _, err := w.startIdle(ctx, "webhooks", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	b.rateLimits, b.unverifiedBodyBytes = ratelimit.Rules{}, -1
	bare, err := w.start(ctx, "webhooks", false, nil)
	if err != nil {
		return err
	}
	const secret = "bench-elevenlabs-webhook-secret"
	if _, err := w.st.PutSecret(ctx, store.ActorCLI, in.ID, store.KindSecret, "ELEVENLABS_WEBHOOK_SECRET", secret, true); err != nil {
		return err
	}
	client := load.NewClient(b.clients)
	events := func(n int64) []byte {
		return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42,"conversation_id":"conv-%d"}`, n, n)
	}
	postcalls := func(n int64) []byte {
		return fmt.Appendf(nil, `{"type":"post_call_transcription","event_timestamp":1737460752,"data":{"agent_id":"agent-1",`+
			`"conversation_id":"guards-%d","status":"done","transcript":[{"role":"agent","message":"Добрий день!"},`+
			`{"role":"user","message":"Так, слухаю."}],"metadata":{"call_duration_secs":42},"analysis":{"call_successful":"success",`+
			`"transcript_summary":"The customer listened."}}}`, n)
	}
	sign := func(body []byte) http.Header {
		return http.Header{elevenlabs.SignatureHeader: {elevenlabs.Sign(secret, time.Now(), body)}}
	}
	type kind struct {
		name, path string
		header     http.Header
		body       func(int64) []byte
		sign       func([]byte) http.Header
	}
	kinds := []kind{
		{"events", "/webhook/call-events", http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {in.WebhookToken}}, events, nil},
		{"postcall", "/webhook/agent-postcall", http.Header{"Content-Type": {"application/json"}}, postcalls, sign},
	}
	for _, k := range kinds {
		var with, without float64
		for round := range guardRounds {
			order := []bool{true, false}
			if round%2 == 1 {
				order = []bool{false, true}
			}
			for _, on := range order {
				addr := bare.Addr()
				if on {
					addr = guarded.Addr()
				}
				res := load.ClosedSigned(ctx, client, b.clients, time.Second, b.duration, "http://"+addr+"/"+in.Slug+k.path, k.header, k.body, k.sign)
				if res.Failed > 0 {
					return fmt.Errorf("%s: %d requests failed (guards %v)", k.name, res.Failed, on)
				}
				fmt.Fprintf(os.Stderr, "callqueue-bench: intake_guards: %s round %d guards %-5v %8.0f req/s p99 %.1f ms\n",
					k.name, round+1, on, res.RPS(), load.MS(res.Percentile(0.99)))
				if on {
					with += res.RPS() / guardRounds
				} else {
					without += res.RPS() / guardRounds
				}
			}
		}
		metric("intake_guards_"+k.name+"_rps", with, "req/s")
		metric("intake_unguarded_"+k.name+"_rps", without, "req/s")
		metric("intake_guards_"+k.name+"_cost", 1-with/without, "ratio")
	}
	return nil
}

// unbindingLimits are the default limits at a thousand times their rates:
// every request is charged as in production, none is refused, however
// fast the machine.
func unbindingLimits() ratelimit.Rules {
	r := ratelimit.RulesDefault()
	for _, rule := range []*ratelimit.Rule{&r.WebhookIntegration, &r.WebhookIP, &r.APIIP, &r.APIToken} {
		rule.PerSecond *= 1000
		rule.Burst *= 1000
	}
	return r
}
