package metrics_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/queue"
)

func TestEveryIntegrationReportsItsBreakersFromTheStart(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v1", Commit: "abc", Role: "all"}, metrics.Options{})
	open := map[string]float64{"b": 2}
	m.RegisterIntegrations(func(context.Context) ([]metrics.Live, error) {
		return []metrics.Live{
			{IntegrationID: "a", Slug: "shop", Active: 1, Queued: 2, Limit: 3},
			{IntegrationID: "b", Slug: "bank", CampaignID: "c1", Active: 2, Queued: 5, Limit: 4},
			{IntegrationID: "b", Slug: "bank", CampaignID: "c2", Active: 1, Queued: 0, Limit: 4},
		}, nil
	}, map[string]metrics.BreakerStates{
		"va":  func(key string) float64 { return open[key] },
		"crm": func(string) float64 { return 0 },
	})
	want := `
# HELP callqueue_active_calls Calls holding a concurrency slot (initiated, in progress, or cancelled while still live).
# TYPE callqueue_active_calls gauge
callqueue_active_calls{integration_id="a",slug="shop"} 1
callqueue_active_calls{integration_id="b",slug="bank"} 3
# HELP callqueue_breaker_state Circuit breaker state per integration and peer (va, crm, llm) in this process: 0 closed, 1 half-open, 2 open.
# TYPE callqueue_breaker_state gauge
callqueue_breaker_state{integration_id="a",peer="crm"} 0
callqueue_breaker_state{integration_id="a",peer="va"} 0
callqueue_breaker_state{integration_id="b",peer="crm"} 0
callqueue_breaker_state{integration_id="b",peer="va"} 2
# HELP callqueue_campaign_queued_calls A campaign's calls waiting for a slot or a calling window.
# TYPE callqueue_campaign_queued_calls gauge
callqueue_campaign_queued_calls{campaign_id="c1",integration_id="b"} 5
callqueue_campaign_queued_calls{campaign_id="c2",integration_id="b"} 0
# HELP callqueue_concurrency_limit Configured concurrency limit.
# TYPE callqueue_concurrency_limit gauge
callqueue_concurrency_limit{integration_id="a",slug="shop"} 3
callqueue_concurrency_limit{integration_id="b",slug="bank"} 4
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "callqueue_active_calls", "callqueue_breaker_state",
		"callqueue_campaign_queued_calls", "callqueue_concurrency_limit"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(`
# HELP callqueue_build_info Always 1; the labels say which build and role this process runs.
# TYPE callqueue_build_info gauge
`), "callqueue_build_info"); err == nil {
		t.Fatal("callqueue_build_info has no series")
	}
}

func TestDeadLettersAreLabelledByStreamAndReasonClass(t *testing.T) {
	m := metrics.New(metrics.Build{}, metrics.Options{})
	m.DeadLettered(queue.KindEvents, "decode: unexpected end of JSON input")
	m.DeadLettered(queue.KindEvents, queue.Permanent(errors.New("no such integration")).Error())
	m.DeadLettered(queue.KindOriginate, "dial: connection refused")
	want := `
# HELP callqueue_dead_letters_total Messages moved to the dead-letter stream, by the stream they came from and why (decode, no_metadata, permanent, max_deliveries).
# TYPE callqueue_dead_letters_total counter
callqueue_dead_letters_total{reason="decode",stream="CALLQUEUE_EVENTS"} 1
callqueue_dead_letters_total{reason="max_deliveries",stream="CALLQUEUE_ORIGINATE"} 1
callqueue_dead_letters_total{reason="permanent",stream="CALLQUEUE_EVENTS"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "callqueue_dead_letters_total"); err != nil {
		t.Fatal(err)
	}
}

func TestSampledSourcesAreReadAtScrapeTimeAndAFailureExportsNothing(t *testing.T) {
	m := metrics.New(metrics.Build{}, metrics.Options{})
	var reads atomic.Int32
	fail := false
	m.RegisterOutbox(func(context.Context) (metrics.Outbox, error) {
		reads.Add(1)
		if fail {
			return metrics.Outbox{}, errors.New("database down")
		}
		return metrics.Outbox{Pending: int(reads.Load()), Failed: 1, OldestPendingSeconds: 90}, nil
	})
	if v := outbox(t, m, "pending").v; v != 1 {
		t.Fatalf("pending = %v, want 1", v)
	}
	if v := outbox(t, m, "pending").v; v != 2 {
		t.Fatalf("pending = %v on the second scrape, want 2 (read again, not cached)", v)
	}
	fail = true
	if n, err := testutil.GatherAndCount(m.Registry, "callqueue_crm_outbox"); err != nil || n != 0 {
		t.Fatalf("%d series (%v) while the source fails, want none", n, err)
	}
}

// outbox returns a collector holding only the outbox series with status.
func outbox(t *testing.T, m *metrics.Metrics, status string) *gathered {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "callqueue_crm_outbox" {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "status" && l.GetValue() == status {
					return &gathered{v: s.GetGauge().GetValue()}
				}
			}
		}
	}
	t.Fatalf("no callqueue_crm_outbox{status=%q}", status)
	return nil
}

func TestCachedSharesReadingsWithinTTL(t *testing.T) {
	var n atomic.Int32
	read := metrics.Cached(time.Hour, func(context.Context) (int32, error) { return n.Add(1), nil })
	a, _ := read(context.Background())
	b, _ := read(context.Background())
	if a != 1 || b != 1 {
		t.Fatalf("readings %d, %d: want one shared reading", a, b)
	}
	fresh := metrics.Cached(0, func(context.Context) (int32, error) { return n.Add(1), nil })
	c, _ := fresh(context.Background())
	d, _ := fresh(context.Background())
	if c == d {
		t.Fatalf("ttl 0 reused reading %d", c)
	}
}

func TestJetStreamConsumerBacklogIsSampledFromTheServer(t *testing.T) {
	srv, err := queue.StartEmbedded(queue.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := queue.ConnectEmbedded(srv, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	q, err := queue.New(ctx, nc, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.JetStream().CreateOrUpdateConsumer(ctx, queue.KindEvents.Stream(),
		jetstream.ConsumerConfig{Durable: "events", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Build{}, metrics.Options{})
	m.RegisterJetStream(q.JetStream())
	if _, err := q.JetStream().Publish(ctx, queue.Subject(queue.KindEvents, [16]byte{1}), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP callqueue_jetstream_consumer_pending_messages Messages not yet delivered to a consumer.
# TYPE callqueue_jetstream_consumer_pending_messages gauge
callqueue_jetstream_consumer_pending_messages{consumer="events",stream="CALLQUEUE_EVENTS"} 1
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "callqueue_jetstream_consumer_pending_messages"); err != nil {
		t.Fatal(err)
	}
	if v := gatheredGauge(t, m, "callqueue_jetstream_up").v; v != 1 {
		t.Fatalf("callqueue_jetstream_up = %v", v)
	}
}

type gathered struct{ v float64 }

func gatheredGauge(t *testing.T, m *metrics.Metrics, name string) *gathered {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return &gathered{v: mf.GetMetric()[0].GetGauge().GetValue()}
		}
	}
	t.Fatalf("no %s", name)
	return nil
}
