package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// statementCounter counts the statements a pool sends, COPYs and the
// transaction's BEGIN and COMMIT included: each is a round trip.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *statementCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1) // a batch is one round trip, whatever it holds
	return ctx
}

func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// countingStore is a fresh store whose statements are counted.
func countingStore(tb testing.TB) (*store.Store, *statementCounter) {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(storetest.NewDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	cfg.AfterConnect = store.RegisterTypes // as store.Connect does
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	sealer, err := store.NewSealer(storetest.SecretKey)
	if err != nil {
		tb.Fatal(err)
	}
	return store.New(pool, sealer), counter
}

// dialledCalls inserts n calls that hold a slot, dialled and accepted, as
// the dispatcher leaves them (the e2e benchmark's starting point).
func dialledCalls(tb testing.TB, s *store.Store, integrationID uuid.UUID, n int, at time.Time) []uuid.UUID {
	tb.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	if _, err := s.Pool().Exec(context.Background(), `INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts,
			queued_at, slot_taken_at, dial_state, created_at, updated_at)
		SELECT id, $2, '+380990000000', 'initiated', 1, 3, $3, $3, 'accepted', $3, $3 FROM unnest($1::uuid[]) AS id`,
		ids, integrationID, at); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// webhookEvents are the call_start and call_end webhooks of calls as the
// events worker hands them to ApplyEvents: named by our bare call id, with
// their message and body keys.
func webhookEvents(integrationID uuid.UUID, calls []uuid.UUID, at time.Time) []store.CallEvent {
	var out []store.CallEvent
	for _, id := range calls {
		for _, kind := range []callstate.Kind{callstate.CallStart, callstate.CallEnd} {
			e := callstate.Event{Kind: kind}
			eventType := "call_start"
			if kind == callstate.CallEnd {
				e.DurationSecs, eventType = 30, "call_end"
			}
			out = append(out, store.CallEvent{IntegrationID: integrationID, ExternalCallID: id.String(), Event: e,
				Key: fmt.Sprintf("bench:%s:%d", id, len(out)), DedupeKey: "event:" + eventType + id.String(), DedupeTTL: queue.DedupeWindow,
				Detail: map[string]any{"eventType": eventType}, TraceID: "trace", At: at})
		}
	}
	return out
}

// BenchmarkApplyEvents is the events worker's transaction for one batch of
// call webhooks against real Postgres: statements (round trips) per batch
// and events applied per second.
//
//	go test -run '^$' -bench ApplyEvents -benchmem ./store/
func BenchmarkApplyEvents(b *testing.B) {
	for _, calls := range []int{8, 64} {
		b.Run(fmt.Sprintf("events=%d", 2*calls), func(b *testing.B) {
			s, counter := countingStore(b)
			name := "bench"
			in, err := s.CreateIntegration(b.Context(), "bench", "bench", store.IntegrationFields{Name: &name})
			if err != nil {
				b.Fatal(err)
			}
			at := time.Now()
			ids := dialledCalls(b, s, in.ID, b.N*calls, at)
			counter.n.Store(0)
			b.ResetTimer()
			for i := range b.N {
				events := webhookEvents(in.ID, ids[i*calls:(i+1)*calls], at)
				applied, err := s.ApplyEvents(b.Context(), events)
				if err != nil {
					b.Fatal(err)
				}
				if a := applied[len(applied)-1]; !a.Found || !a.Decision.Changed {
					b.Fatalf("call_end not applied: %+v", a.Decision)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(counter.n.Load())/float64(b.N), "stmts/batch")
			b.ReportMetric(float64(b.N*2*calls)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
