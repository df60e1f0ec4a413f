package store

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// WithApplyHooks returns a copy of s whose ApplyEvents runs hooks.
func WithApplyHooks(s *Store, hooks *ApplyHooks) *Store {
	c := *s
	c.hooks = hooks
	return &c
}

// ExplainLaneQuery is the plan of a claim's read of a lane (uuid.Nil: the
// webhook lane), with sequential scans discouraged as on a large table.
func ExplainLaneQuery(ctx context.Context, s *Store, laneID, integrationID uuid.UUID, owner string, now time.Time) (string, error) {
	var plan strings.Builder
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		query, args := laneQuery(laneID, integrationID, owner, now, 8, nil)
		rows, err := tx.Query(ctx, "EXPLAIN "+query, args...)
		if err != nil {
			return err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		plan.WriteString(strings.Join(lines, "\n"))
		return err
	})
	return plan.String(), err
}

// The timeseries queries, for their plan test.
const (
	IntegrationTimeseriesSQL = integrationTimeseriesSQL
	CampaignTimeseriesSQL    = campaignTimeseriesSQL
	RemoveOriginateKeysSQL   = removeOriginateKeysSQL
	LiveGaugesSQL            = liveGaugesSQL
	CallStatusAgesSQL        = callStatusAgesSQL
)

// AwaitingPostcallSQL is the watchdog's read of the calls waiting for
// their post-call report, for its plan test.
var AwaitingPostcallSQL = awaitingPostcallSQL
