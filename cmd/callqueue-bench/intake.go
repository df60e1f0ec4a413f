package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/queue"
)

// intake measures call-events webhooks with a durable JetStream ack before
// the 2xx, against a bare net/http handler measured with the same client.
func (b *bench) intake(ctx context.Context) error {
	w, err := b.newWorld(ctx, "intake")
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, _, err := w.startIdle(ctx, "webhooks", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	client := load.NewClient(b.clients)
	header := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {in.WebhookToken}}
	body := func(n int64) []byte {
		return fmt.Appendf(nil, `{"eventType":"call_end","callId":"va-%d","duration":42,"conversation_id":"conv-%d"}`, n, n)
	}

	// Baseline: a bare handler that reads the body and answers like the webhook.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"success":true}` + "\n"))
	})}
	go func() { _ = bare.Serve(ln) }()
	defer bare.Close()
	ceiling := load.Closed(ctx, client, b.clients, time.Second, b.duration, "http://"+ln.Addr().String()+"/", header, body)

	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/call-events"
	res := load.Closed(ctx, client, b.clients, time.Second, b.duration, url, header, body)
	if res.Failed > 0 {
		return fmt.Errorf("%d intake requests failed", res.Failed)
	}
	stored, err := streamCount(ctx, svc.Queue, queue.KindEvents)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: intake: %d accepted in the measured window, %d stored in total (warm-up included)\n", res.OK, stored)

	metric("intake_rps", res.RPS(), "req/s")
	metric("intake_p50_ms", load.MS(res.Percentile(0.50)), "ms")
	metric("intake_p99_ms", load.MS(res.Percentile(0.99)), "ms")
	metric("ceiling_rps", ceiling.RPS(), "req/s")
	metric("ceiling_p99_ms", load.MS(ceiling.Percentile(0.99)), "ms")
	metric("intake_ceiling_ratio", res.RPS()/ceiling.RPS(), "ratio")
	// Latency at a fixed offered load: the closed loop's p99 at saturation
	// measures our own queue.
	return reportOpenLoop(ctx, client, res.RPS(), b.duration, http.MethodPost, header, body, openTarget{"intake", url})
}

func streamCount(ctx context.Context, q *queue.Queue, kind queue.Kind) (uint64, error) {
	s, err := q.JetStream().Stream(ctx, "CALLQUEUE_"+map[queue.Kind]string{queue.KindEvents: "EVENTS",
		queue.KindOriginate: "ORIGINATE", queue.KindPostcall: "POSTCALL"}[kind])
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
