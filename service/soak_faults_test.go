package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// soakOutageGrace is the workers' OutageGrace: how long their watchdog
// waits, once the database is back, for the work held during an outage
// (dial answers, call events, post-calls) to be applied.
const soakOutageGrace = 5 * time.Second

// soakOutageGap is the workers' OutageGap: how long no watchdog of any
// replica may have reached the database before its return starts the
// grace for every replica, also one started after it (the watchdogs run
// every 100 ms).
const soakOutageGap = 1500 * time.Millisecond

// postgresOutage takes the database away from every worker for longer
// than DialLostAfter: the clock jumps past it while the workers cannot
// reach Postgres (their connections go through a proxy that drops them and
// refuses new ones), for a few of the consumers' AckWaits of wall time.
// Dials in flight, their answers and the VA's reports wait meanwhile; none
// may be taken for silence when the database returns.
//
// In half of them a worker dies during the outage, its held work with it,
// and a new one starts once the database is back: it never saw the
// outage, and must not release the calls whose answers and events are
// still on their way either.
func (w *soakWorld) postgresOutage() {
	w.proxy.Cut()
	w.c.env.Clock.Advance(w.c.opt.Workers.DialLostAfter + 30*time.Second)
	fresh := w.rng.IntN(2) == 0 && len(w.workers) > 1
	if fresh {
		w.kill(w.rng.IntN(len(w.workers)))
	}
	time.Sleep(time.Duration(1000+w.rng.IntN(1500)) * time.Millisecond)
	if fresh {
		time.Sleep(soakOutageGap) // longer than the gap: every replica's grace starts
	}
	w.proxy.Restore()
	if fresh {
		w.startWorker()
		w.fault("postgres_outage fresh_replica")
		return
	}
	w.fault("postgres_outage")
}

// skewedReplica replaces a worker process by one on a host whose clock is
// 40 s ahead or behind: leases and deadlines are the database's, so it
// must not claim what another holds, nor give up on anything early.
func (w *soakWorld) skewedReplica() {
	i := w.rng.IntN(len(w.workers))
	victim := w.workers[i]
	w.workers, w.names = slices.Delete(w.workers, i, i+1), slices.Delete(w.names, i, i+1)
	skew := 40 * time.Second
	if w.rng.IntN(2) == 0 {
		skew = -skew
	}
	w.startWorkerSkewed(skew)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.shutdown(ctx, victim)
	w.fault(fmt.Sprintf("skewed_replica %+ds", int(skew.Seconds())))
}

// uploadDuringRestart is a deploy of the admin API while a slow client
// uploads recipients: SIGTERM's orderly stop of the process serving the
// upload, with a new process taking new requests. The upload is answered,
// or retried by the operator against the new process (what was added
// before counts as duplicates): either way every recipient is added once.
func (w *soakWorld) uploadDuringRestart() {
	open := w.uncancelledCampaigns()
	if len(open) == 0 {
		// The deploy needs an upload to land in: without a campaign the
		// step would be scheduled and never happen.
		w.createCampaign()
		if open = w.uncancelledCampaigns(); len(open) == 0 {
			return
		}
	}
	cp := open[w.rng.IntN(len(open))]
	recipients := w.nextCampaignPhones(2 + w.rng.IntN(4))
	for _, r := range recipients {
		cp.phones = append(cp.phones, r["phoneNumber"].(string))
	}
	body, err := json.Marshal(recipients)
	if err != nil {
		w.t.Fatal(err)
	}
	w.apiMu.Lock()
	url := w.c.admin.URL + "/api/campaigns/" + cp.id.String() + "/recipients"
	w.apiMu.Unlock()
	answered := make(chan int, 1)
	go func() {
		// A client on a slow link: the body takes about a second.
		req, err := http.NewRequest("POST", url, &trickle{data: body, chunk: 1 + len(body)/10, every: 100 * time.Millisecond})
		if err != nil {
			answered <- 0
			return
		}
		req.Header.Set("Authorization", "Bearer "+w.c.admin.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			answered <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(time.Duration(100+w.rng.IntN(700)) * time.Millisecond)
	w.restartAPI()
	code := <-answered
	if code != http.StatusOK {
		// Not answered: the operator sends it again, to the new process.
		w.uploadRecipients(cp, recipients)
	} else {
		for _, r := range recipients {
			cp.added[r["phoneNumber"].(string)] = true
		}
	}
	w.fault(fmt.Sprintf("upload_during_restart %d", code))
}

// uncancelledCampaigns are the campaigns the operator has not cancelled.
func (w *soakWorld) uncancelledCampaigns() []*soakCampaign {
	var open []*soakCampaign
	for _, cp := range w.campaigns {
		if !cp.cancelAsked {
			open = append(open, cp)
		}
	}
	return open
}

// restartAPI is a rolling deploy of the admin API process: the new one
// serves before the old one stops.
func (w *soakWorld) restartAPI() {
	old := w.c.api
	in := w.c.env.Start(servicetest.Options{Role: "api"})
	in.Store.SetCommitFault(w.lostAPI.Fault)
	w.apiMu.Lock()
	w.c.api, w.c.admin.URL = in, in.URL
	w.apiMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = old.Shutdown(ctx)
}

// trickle is a request body sent a chunk at a time, as over a slow link.
type trickle struct {
	data  []byte
	chunk int
	every time.Duration
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// slowClientDuringRestart is a deploy of the webhooks process while a CRM
// on a slow link sends a call-originate (its body takes about a second):
// a new process serves before the old one gets SIGTERM (Shutdown), and a
// worker is restarted the same way meanwhile. The originate is answered,
// then it must be a call, or it is not, and the CRM sends it again under
// its Idempotency-Key to the new process; the worker's dials in flight
// finish and are recorded.
func (w *soakWorld) slowClientDuringRestart() {
	n := len(w.originated)
	key, phone := fmt.Sprintf("soak-%d", n), fmt.Sprintf("+38063%07d", n)
	body, err := json.Marshal(map[string]any{"phone_number": phone})
	if err != nil {
		w.t.Fatal(err)
	}
	url := *w.c.hooksURL.Load() + "/" + w.c.integ.Slug + "/webhook/call-originate"
	type answer struct {
		code int
		id   uuid.UUID
	}
	answered := make(chan answer, 1)
	go func() {
		req, err := http.NewRequest("POST", url, &trickle{data: body, chunk: 1 + len(body)/10, every: 100 * time.Millisecond})
		if err != nil {
			answered <- answer{}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Webhook-Token", w.c.integ.WebhookToken)
		req.Header.Set("Idempotency-Key", key)
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			answered <- answer{}
			return
		}
		defer resp.Body.Close()
		var out struct {
			CallID uuid.UUID `json:"callId"`
		}
		if json.NewDecoder(resp.Body).Decode(&out) != nil {
			answered <- answer{code: resp.StatusCode}
			return
		}
		answered <- answer{code: resp.StatusCode, id: out.CallID}
	}()
	time.Sleep(time.Duration(100+w.rng.IntN(700)) * time.Millisecond)
	old := w.c.hooks
	w.c.hooks = w.c.env.Start(servicetest.Options{Role: "webhooks", BreakerOpenFor: w.c.opt.BreakerOpenFor})
	w.c.hooksURL.Store(&w.c.hooks.URL)
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- old.Shutdown(ctx)
	}()
	w.restartWorker()
	if err := <-stopped; err != nil {
		w.t.Logf("the webhooks process's shutdown: %v", err)
	}
	a := <-answered
	switch {
	case a.code == http.StatusAccepted && a.id != uuid.Nil:
		w.originated[key] = a.id
	default:
		// Not answered: the CRM sends it again, to the new process.
		w.originateUntilTaken(phone, key)
	}
	w.fault(fmt.Sprintf("slow_client_during_restart %d", a.code))
}
