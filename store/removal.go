package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Removed counts the rows a removal of calls deleted (retention, erasure).
type Removed struct {
	Calls        int `json:"calls"`
	Events       int `json:"events"`
	Attempts     int `json:"attempts"`
	CRMUpdates   int `json:"crmUpdates"`
	Analyses     int `json:"analyses"`
	ParkedEvents int `json:"parkedEvents"`
	// IdempotencyKeys are call-originate keys that pointed at the calls.
	IdempotencyKeys int `json:"idempotencyKeys"`
}

// ByTable is how many rows left each table.
func (r Removed) ByTable() map[string]int {
	return map[string]int{"calls": r.Calls, "call_events": r.Events, "call_attempts": r.Attempts, "crm_outbox": r.CRMUpdates,
		"pending_analyses": r.Analyses, "parked_events": r.ParkedEvents, "processed_keys": r.IdempotencyKeys}
}

// Rows is every row deleted.
func (r Removed) Rows() int {
	return r.Calls + r.Events + r.Attempts + r.CRMUpdates + r.Analyses + r.ParkedEvents + r.IdempotencyKeys
}

// Add adds o's counts to r's.
func (r *Removed) Add(o Removed) {
	r.Calls += o.Calls
	r.Events += o.Events
	r.Attempts += o.Attempts
	r.CRMUpdates += o.CRMUpdates
	r.Analyses += o.Analyses
	r.ParkedEvents += o.ParkedEvents
	r.IdempotencyKeys += o.IdempotencyKeys
}

// removeOriginateKeysSQL removes the idempotency keys that name the calls
// $1, by the index on their ref (migration 0021).
const removeOriginateKeysSQL = `DELETE FROM processed_keys WHERE scope = 'originate' AND ref = ANY($1::uuid[]::text[])`

// removeCalls deletes calls (locked by the caller) with everything linked
// to them: history, attempts, CRM updates, pending analyses, events parked
// under their dialler ids, and the idempotency keys that name them. Their
// campaigns keep counting them in their progress, by where they ended (a
// call that had not ended counts as cancelled: it will never be dialled).
func removeCalls(ctx context.Context, tx pgx.Tx, ids []uuid.UUID) (Removed, error) {
	var r Removed
	if len(ids) == 0 {
		return r, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE campaigns c SET removed_completed = removed_completed + k.completed,
			removed_failed = removed_failed + k.failed, removed_cancelled = removed_cancelled + k.cancelled,
			removed_suppressed = removed_suppressed + k.suppressed
		FROM (SELECT campaign_id,
				count(*) FILTER (WHERE status = 'completed') AS completed,
				count(*) FILTER (WHERE status = 'failed') AS failed,
				count(*) FILTER (WHERE outcome = 'suppressed') AS suppressed,
				count(*) FILTER (WHERE status NOT IN ('completed', 'failed') AND outcome IS DISTINCT FROM 'suppressed') AS cancelled
			FROM calls WHERE id = ANY($1) AND campaign_id IS NOT NULL GROUP BY campaign_id) k
		WHERE c.id = k.campaign_id`, ids); err != nil {
		return r, fmt.Errorf("keep campaign counts: %w", err)
	}
	steps := []struct {
		n     *int
		query string
	}{
		{&r.ParkedEvents, `DELETE FROM parked_events p USING call_attempts a
			WHERE a.call_id = ANY($1) AND p.integration_id = a.integration_id
				AND p.external_call_id IN (a.external_call_id, a.conversation_id)`},
		{&r.IdempotencyKeys, removeOriginateKeysSQL},
		{&r.Events, `DELETE FROM call_events WHERE call_id = ANY($1)`},
		{&r.Attempts, `DELETE FROM call_attempts WHERE call_id = ANY($1)`},
		{&r.CRMUpdates, `DELETE FROM crm_outbox WHERE call_id = ANY($1)`},
		{&r.Analyses, `DELETE FROM pending_analyses WHERE call_id = ANY($1)`},
		{&r.Calls, `DELETE FROM calls WHERE id = ANY($1)`},
	}
	for _, step := range steps {
		tag, err := tx.Exec(ctx, step.query, ids)
		if err != nil {
			return r, fmt.Errorf("remove calls: %w", err)
		}
		*step.n = int(tag.RowsAffected())
	}
	return r, nil
}
