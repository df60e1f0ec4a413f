package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/analysis"
	"github.com/callqueue/callqueue/callstate"
)

// AnalysisHold is how long a finished call's CRM update waits for its
// LLM analysis. The analysis releases it as soon as it is applied (or has
// failed); past the hold the update goes with the agent's analysis, and a
// later LLM answer amends only the call.
const AnalysisHold = 15 * time.Minute

// HistoryAnalysis is the history entry of an applied LLM analysis.
const HistoryAnalysis = "analysis"

// llmConfigured reports whether an integration's "analysis" config key
// names an LLM, so that its finished calls queue an LLM analysis.
func llmConfigured(raw json.RawMessage) bool {
	var cfg analysis.Config
	return len(raw) > 0 && json.Unmarshal(raw, &cfg) == nil && cfg.Enabled()
}

// AnalysisJob is a finished call waiting for its LLM analysis, leased to
// one worker.
type AnalysisJob struct {
	CallID        uuid.UUID
	IntegrationID uuid.UUID
	Attempt       int
	// Tries counts the claims, this one included: a job whose worker keeps
	// dying is given up rather than claimed forever.
	Tries      int
	LeaseToken uuid.UUID
	Transcript json.RawMessage
	// Analysis is the call's stored analysis (the agent's).
	Analysis json.RawMessage
	// TraceParent is the trace context of the post-call it analyses.
	TraceParent *string
}

// AnalysisClaim says which pending analyses to lease.
type AnalysisClaim struct {
	Now   time.Time
	Lease time.Duration
	Limit int
	// PerIntegration bounds one integration's analyses in flight, counting
	// InFlight: the claim goes round-robin over integrations (each one's
	// oldest first), so one tenant's backlog or hanging LLM cannot take
	// every worker.
	PerIntegration int
	// InFlight is how many analyses of each integration the claimer runs.
	InFlight map[uuid.UUID]int
}

// ClaimAnalyses leases due analyses under a new fencing token.
func (s *Store) ClaimAnalyses(ctx context.Context, c AnalysisClaim) ([]AnalysisJob, error) {
	busy, counts := []uuid.UUID{}, []int{}
	for id, n := range c.InFlight {
		busy, counts = append(busy, id), append(counts, n)
	}
	// A window function cannot lock rows, so the UPDATE checks again that
	// each row is still free: a concurrent claimer's lease makes it skip.
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT p.call_id, p.created_at,
				row_number() OVER (PARTITION BY p.integration_id ORDER BY p.created_at, p.call_id) + COALESCE(b.n, 0) AS turn
			FROM pending_analyses p LEFT JOIN unnest($6::uuid[], $7::int[]) AS b (integration_id, n) USING (integration_id)
			WHERE p.locked_until IS NULL OR p.locked_until <= `+dbNow(1)+`)
		UPDATE pending_analyses p SET locked_until = `+dbNow(1)+` + $2, lease_token = $4, tries = p.tries + 1
		FROM calls c
		WHERE p.call_id IN (SELECT call_id FROM due WHERE turn <= $5 ORDER BY turn, created_at LIMIT $3)
			AND (p.locked_until IS NULL OR p.locked_until <= `+dbNow(1)+`) AND c.id = p.call_id
		RETURNING p.call_id, p.integration_id, p.attempt, p.tries, p.lease_token, COALESCE(p.transcript, c.transcript),
			COALESCE(p.agent_analysis, c.analysis), p.trace_parent`,
		s.dbClock(), c.Lease, c.Limit, uuid.New(), max(c.PerIntegration, 1), busy, counts)
	if err != nil {
		return nil, err
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AnalysisJob, error) {
		var j AnalysisJob
		err := row.Scan(&j.CallID, &j.IntegrationID, &j.Attempt, &j.Tries, &j.LeaseToken, &j.Transcript, &j.Analysis, &j.TraceParent)
		return j, err
	})
	if err := s.answered(ctx, err); err != nil {
		return nil, err
	}
	return jobs, nil
}

// ReleaseAnalysis gives a job back at once, uncounted: its worker is
// stopping and the next one asks the LLM again.
func (s *Store) ReleaseAnalysis(ctx context.Context, job AnalysisJob) error {
	_, err := s.pool.Exec(ctx, `UPDATE pending_analyses SET locked_until = NULL, lease_token = NULL, tries = greatest(tries - 1, 0)
		WHERE call_id = $1 AND lease_token = $2`, job.CallID, job.LeaseToken)
	return s.answered(ctx, err)
}

// Amendment is a finished call's analysis as settled: the LLM's, or the
// agent's when the LLM could not answer.
type Amendment struct {
	Analysis json.RawMessage
	Summary  string
	Detail   map[string]any
}

// FinishAnalysis applies a job's settled analysis under its lease (fenced:
// ErrLeaseLost when another worker took it over), in one transaction: the
// call's analysis (its verdict included) and summary, as far as the mode
// that stored the call keeps them, a history entry, a suppression when the
// analysis asks for one, and the call's held CRM update, amended and
// released at once.
func (s *Store) FinishAnalysis(ctx context.Context, now time.Time, job AnalysisJob, a Amendment) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM pending_analyses WHERE call_id = $1 AND lease_token = $2`, job.CallID, job.LeaseToken)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrLeaseLost
		}
		c, err := scanCall(tx.QueryRow(ctx, `SELECT `+callColumns+` FROM calls WHERE id = $1 FOR UPDATE`, job.CallID))
		if err != nil {
			return err
		}
		detail := map[string]any{}
		for k, v := range a.Detail {
			detail[k] = v
		}
		if c.Attempt != job.Attempt {
			// Only a call that moved on could get here (a finished call
			// does not); its new attempt is not this analysis' to amend,
			// but what the person asked for still counts.
			detail["ignored"] = true
			if err := insertHistory(ctx, tx, c, job.Attempt, detail, now); err != nil {
				return err
			}
			return honourAnalysedDoNotCall(ctx, tx, c, a.Analysis, now)
		}
		c.Analysis = a.Analysis
		if a.Summary != "" {
			c.Summary = &a.Summary
		}
		c.UpdatedAt = now
		// The verdict is the analysis' own outcome; the call's stays one of
		// the enumerated outcomes (contract §3).
		kept := c.storedContent()
		if _, err := tx.Exec(ctx, `UPDATE calls SET analysis = $2::jsonb, summary = $3, updated_at = $4 WHERE id = $1`,
			c.ID, kept.analysis, kept.summary, now); err != nil {
			return err
		}
		released, err := releaseHeldUpdates(ctx, tx, &c, now, s.dbClock())
		if err != nil {
			return err
		}
		detail["crmUpdateReleased"] = released
		if err := insertHistory(ctx, tx, c, job.Attempt, detail, now); err != nil {
			return err
		}
		return honourAnalysedDoNotCall(ctx, tx, c, c.Analysis, now)
	})
}

// honourAnalysedDoNotCall applies the LLM's do_not_call as a post-call's
// (contract §7): the number is suppressed and the call, if it could still
// be dialled again, is cancelled with outcome suppressed.
func honourAnalysedDoNotCall(ctx context.Context, tx pgx.Tx, c Call, analysis json.RawMessage, now time.Time) error {
	if !requestsDoNotCall(analysis) {
		return nil
	}
	if err := suppressRequested(ctx, tx, []uuid.UUID{c.ID}, now); err != nil {
		return fmt.Errorf("suppress number: %w", err)
	}
	if c.Status.Terminal() {
		return nil
	}
	_, err := applyEvents(ctx, tx, []CallEvent{{IntegrationID: c.IntegrationID, CallID: c.ID, At: now,
		Event:  callstate.Event{Kind: callstate.Cancel, Reason: callstate.OutcomeSuppressed},
		Detail: map[string]any{"suppression": SuppressionReasonRequested, "source": "llm"}}}, nil, nil) // a cancel takes no slot
	return err
}

// releaseHeldUpdates amends the call's pending CRM updates that no
// deliverer holds with the amended analysis and makes them due now; it
// returns how many it released. An update already sent (or being sent)
// keeps what it said.
func releaseHeldUpdates(ctx context.Context, tx pgx.Tx, c *Call, now time.Time, dbClock *time.Time) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, event FROM crm_outbox
		WHERE call_id = $1 AND status = 'pending' AND (locked_until IS NULL OR locked_until <= `+dbNow(2)+`) FOR UPDATE`, c.ID, dbClock)
	if err != nil {
		return 0, err
	}
	type held struct {
		ID    uuid.UUID
		Event string
	}
	updates, err := pgx.CollectRows(rows, pgx.RowToStructByPos[held])
	if err != nil {
		return 0, err
	}
	for _, u := range updates {
		patch, err := amendedPayload(c, u.Event)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, `UPDATE crm_outbox SET payload = (payload - 'extracted') || $2::jsonb,
				next_attempt_at = least(next_attempt_at, $3)
			WHERE id = $1`, u.ID, string(patch), now); err != nil {
			return 0, err
		}
	}
	return len(updates), nil
}

func insertHistory(ctx context.Context, tx pgx.Tx, c Call, attempt int, detail map[string]any, at time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, detail, occurred_at)
		VALUES ($1, $2, $3, $4, $4, $5, $6)`, c.ID, attempt, HistoryAnalysis, string(c.Status), detail, at)
	return err
}

// AnalysisBacklog is the LLM analyses waiting to amend finished calls.
type AnalysisBacklog struct {
	Pending int
	// OldestPending is the age of the oldest waiting analysis (0 when none).
	OldestPending time.Duration
}

// AnalysisBacklog counts the analyses waiting and how old the oldest is.
func (s *Store) AnalysisBacklog(ctx context.Context) (AnalysisBacklog, error) {
	var b AnalysisBacklog
	var secs float64
	err := s.pool.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
		FROM pending_analyses`).Scan(&b.Pending, &secs)
	b.OldestPending = time.Duration(max(secs, 0) * float64(time.Second))
	return b, err
}
