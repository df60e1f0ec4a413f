package service

import (
	"context"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/breaker"
	"github.com/callqueue/callqueue/metrics"
)

// registerSampled registers the collectors that read state at scrape time:
// per-integration live calls, limits and breakers, calls per status, the
// CRM outbox, the LLM analyses waiting, JetStream's streams and consumers, the pgx pool and whether
// Postgres and JetStream answer.
func (s *Service) registerSampled() {
	breakers := map[string]metrics.BreakerStates{
		"va":  func(key string) float64 { return breaker.StateValue(s.Dialer.Breakers().State(key)) },
		"crm": func(key string) float64 { return breaker.StateValue(s.CRM.Breakers().State(key)) },
	}
	if s.llmBreakers != nil {
		breakers["llm"] = func(key string) float64 { return breaker.StateValue(s.llmBreakers.State(key)) }
	}
	s.Metrics.RegisterIntegrations(func(ctx context.Context) ([]metrics.Live, error) {
		gs, err := s.Store.Gauges(ctx)
		out := make([]metrics.Live, len(gs))
		for i, g := range gs {
			out[i] = metrics.Live{IntegrationID: g.IntegrationID.String(), Slug: g.Slug, Active: g.Active, Queued: g.Queued,
				Done: g.Done, Limit: g.Limit}
			if g.CampaignID != uuid.Nil {
				out[i].CampaignID = g.CampaignID.String()
			}
		}
		return out, err
	}, breakers)
	s.Metrics.RegisterCallAges(func(ctx context.Context) ([]metrics.StatusAge, error) {
		rows, err := s.Store.CallStatusAges(ctx)
		out := make([]metrics.StatusAge, len(rows))
		for i, r := range rows {
			out[i] = metrics.StatusAge{IntegrationID: r.IntegrationID, Status: r.Status, Calls: r.Calls, OldestSeconds: r.Oldest.Seconds()}
		}
		return out, err
	})
	s.Metrics.RegisterOutbox(func(ctx context.Context) (metrics.Outbox, error) {
		b, err := s.Store.OutboxBacklog(ctx)
		return metrics.Outbox{Pending: b.Pending, Failed: b.Failed, NoRecord: b.NoRecord, OldestPendingSeconds: b.OldestPending.Seconds()}, err
	})
	s.Metrics.RegisterAnalyses(func(ctx context.Context) (metrics.Analyses, error) {
		b, err := s.Store.AnalysisBacklog(ctx)
		return metrics.Analyses{Pending: b.Pending, OldestPendingSeconds: b.OldestPending.Seconds()}, err
	})
	s.Metrics.RegisterJetStream(s.Queue.JetStream())
	s.Metrics.RegisterPool(s.Pool)
	s.Metrics.RegisterDependencies(map[string]func(context.Context) error{"postgres": s.Store.Ping, "jetstream": s.Queue.Ping})
}
