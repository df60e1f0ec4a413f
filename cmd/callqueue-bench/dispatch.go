package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/service"
	"github.com/callqueue/callqueue/store"
)

// fakeVA answers originate requests and tells the bench about each.
type fakeVA struct {
	*httptest.Server
	mu         sync.Mutex
	live       map[string]bool
	limit      int
	violations atomic.Int64
	originates atomic.Int64
	arrived    chan vaCall
}

type vaCall struct {
	callID string
	at     time.Time
}

func newFakeVA(limit int) *fakeVA {
	va := &fakeVA{live: map[string]bool{}, limit: limit, arrived: make(chan vaCall, 100000)}
	va.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var body struct {
			CallID string `json:"call_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		va.mu.Lock()
		if len(va.live) >= va.limit {
			va.violations.Add(1)
		}
		va.live[body.CallID] = true
		va.mu.Unlock()
		va.originates.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"callId":"va-` + body.CallID + `"}`))
		va.arrived <- vaCall{callID: body.CallID, at: at}
	}))
	return va
}

// end marks a call over (before its call_end is sent, as a real network would).
func (va *fakeVA) end(callID string) {
	va.mu.Lock()
	delete(va.live, callID)
	va.mu.Unlock()
}

func postJSON(client *http.Client, url, token string, body any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return nil
}

// dispatch measures call_end received → the next queued call's originate
// at the VA, with a limit of 1 so every call_end frees the only slot.
func (b *bench) dispatch(ctx context.Context) error {
	const samples = 300
	w, va, svc, in, err := b.oneSlotWorld(ctx, "dispatch")
	if err != nil {
		return err
	}
	defer w.close()
	defer va.Close()
	client := load.NewClient(4)
	base := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/"
	for i := range samples + 1 {
		if err := postJSON(client, base+"call-originate", in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38099%07d", i)}); err != nil {
			return err
		}
	}
	return measureFreedSlots(client, base, in.WebhookToken, va, []vaCall{<-va.arrived}, samples, "dispatch")
}

// oneSlotWorld is a world with one process of every role and an
// integration whose VA takes one call at a time: every call_end frees the
// only slot. The caller closes the world and the VA.
func (b *bench) oneSlotWorld(ctx context.Context, name string) (*world, *fakeVA, *service.Service, store.Integration, error) {
	w, err := b.newWorld(ctx, name)
	if err != nil {
		return nil, nil, nil, store.Integration{}, err
	}
	va := newFakeVA(1)
	svc, err := w.start(ctx, "all", true, nil)
	var in store.Integration
	if err == nil {
		in, _, err = w.setupIntegration(ctx, "", va.URL, `{"concurrency_limit": 1}`)
	}
	if err != nil {
		va.Close()
		w.close()
		return nil, nil, nil, store.Integration{}, err
	}
	return w, va, svc, in, nil
}

// measureFreedSlots ends the oldest of the live calls samples times, each
// by a call_end webhook, and reports the time from the webhook to the next
// originate at the VA as <name>_p50_ms and <name>_p99_ms.
func measureFreedSlots(client *http.Client, base, token string, va *fakeVA, live []vaCall, samples int, name string) error {
	lat, _, err := freedSlots(client, base, token, va, live, func(n int) bool { return n < samples })
	if err != nil {
		return err
	}
	slices.Sort(lat)
	metric(name+"_p50_ms", load.MS(load.Percentile(lat, 0.50)), "ms")
	metric(name+"_p99_ms", load.MS(load.Percentile(lat, 0.99)), "ms")
	if v := va.violations.Load(); v != 0 {
		return fmt.Errorf("%s run saw %d limit violations", name, v)
	}
	return nil
}

// freedSlots ends the oldest live call, by a call_end webhook, while more
// says so (given how many it measured), and returns the times from each
// webhook to the next originate at the VA, and the calls then live.
func freedSlots(client *http.Client, base, token string, va *fakeVA, live []vaCall, more func(n int) bool) ([]time.Duration, []vaCall, error) {
	var lat []time.Duration
	for more(len(lat)) {
		cur := live[0]
		live = live[1:]
		va.end(cur.callID)
		sent := time.Now()
		if err := postJSON(client, base+"call-events", token, map[string]any{"eventType": "call_end", "callId": cur.callID, "duration": 30}); err != nil {
			return nil, nil, err
		}
		select {
		case next := <-va.arrived:
			lat = append(lat, next.at.Sub(sent))
			live = append(live, next)
		case <-time.After(10 * time.Second):
			return nil, nil, fmt.Errorf("no originate within 10s of a freed slot")
		}
	}
	return lat, live, nil
}

// limit runs 400 calls through two worker processes and one webhook
// process against a limit of 4, the VA ending each call after a few
// milliseconds, and counts originates that arrived while 4 were live.
func (b *bench) limit(ctx context.Context) error {
	const calls, limit = 400, 4
	w, err := b.newWorld(ctx, "limit")
	if err != nil {
		return err
	}
	defer w.close()
	va := newFakeVA(limit)
	defer va.Close()
	hooks, err := w.start(ctx, "webhooks", true, nil)
	if err != nil {
		return err
	}
	for range 2 {
		if _, err := w.start(ctx, "workers", false, nil); err != nil {
			return err
		}
	}
	in, _, err := w.setupIntegration(ctx, "", va.URL, fmt.Sprintf(`{"concurrency_limit": %d}`, limit))
	if err != nil {
		return err
	}
	client := load.NewClient(16)
	base := "http://" + hooks.Addr() + "/" + in.Slug + "/webhook/"
	go func() {
		for c := range va.arrived {
			go func() {
				time.Sleep(time.Duration(1+rand.IntN(10)) * time.Millisecond)
				_ = postJSON(client, base+"call-events", in.WebhookToken, map[string]any{"eventType": "call_start", "callId": c.callID})
				time.Sleep(time.Duration(1+rand.IntN(10)) * time.Millisecond)
				va.end(c.callID)
				_ = postJSON(client, base+"call-events", in.WebhookToken, map[string]any{"eventType": "call_end", "callId": c.callID, "duration": 30})
			}()
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; i < calls; i += 8 {
				_ = postJSON(client, base+"call-originate", in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38098%07d", i)})
			}
		}()
	}
	wg.Wait()
	if err := w.waitCount(ctx, `SELECT count(*) FROM calls WHERE status = 'waiting_postcall'`, calls, 3*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(os.Stderr, "callqueue-bench: limit: %d calls through limit %d in %s, %d originates\n", calls, limit, elapsed.Round(time.Millisecond), va.originates.Load())
	metric("limit_violations", float64(va.violations.Load()), "count")
	metric("limit_calls_per_s", float64(calls)/elapsed.Seconds(), "calls/s")
	return nil
}
