package service

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/metrics"
)

// ForgetEvery is how often state kept per integration in memory is
// checked against the integrations that still exist, and the integrations
// with metric series of their own are chosen again.
const ForgetEvery = metrics.RankEvery

// forgetDeleted drops breakers, cached CRM clients and metric series of
// integrations that no longer exist. Every role runs it: a deletion made
// through another process's API must be forgotten here too.
func (s *Service) forgetDeleted(ctx context.Context) error {
	ids, err := s.Store.IntegrationIDs(ctx)
	if err != nil {
		return err
	}
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		live[id.String()] = true
	}
	keep := func(key string) bool { return live[key] }
	s.Dialer.Breakers().Retain(keep)
	s.CRM.Breakers().Retain(keep)
	s.CRM.Retain(func(id uuid.UUID) bool { return live[id.String()] })
	if s.llmBreakers != nil {
		s.llmBreakers.Retain(keep)
	}
	s.Metrics.Retain(keep)
	return nil
}

// runForgetting runs forgetDeleted and ranks the integrations' metric
// series every ForgetEvery until ctx ends.
func (s *Service) runForgetting(ctx context.Context) {
	t := time.NewTicker(ForgetEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.forgetDeleted(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("forgetting deleted integrations failed")
			}
			s.Metrics.Rank()
		}
	}
}
