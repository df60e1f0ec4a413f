package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// GetCall returns a call of one of owner's integrations ("" owner: any).
func (s *Store) GetCall(ctx context.Context, owner string, id uuid.UUID) (Call, error) {
	return scanCall(s.pool.QueryRow(ctx, `SELECT `+prefixed("c.", callColumns)+` FROM calls c
		JOIN integrations i ON i.id = c.integration_id WHERE c.id = $1 AND (i.owner_id = $2 OR $2 = '')`, id, owner))
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// CallHistory returns a call's events, oldest first.
func (s *Store) CallHistory(ctx context.Context, id uuid.UUID) ([]CallEventRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at
		FROM call_events WHERE call_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []CallEventRow{}
	for rows.Next() {
		var e CallEventRow
		if err := rows.Scan(&e.ID, &e.Attempt, &e.Kind, &e.FromStatus, &e.ToStatus, &e.Detail, &e.TraceID, &e.OccurredAt); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CallFilter selects calls for a list.
type CallFilter struct {
	IntegrationID uuid.UUID
	CampaignID    uuid.UUID
	Status        callstate.Status
	Phone         string
	CreatedFrom   time.Time
	CreatedTo     time.Time
	Order         string // createdAt or -createdAt (default)
	Limit         int
	Offset        int
}

// ListCalls returns one page of owner's calls and whether more follow.
func (s *Store) ListCalls(ctx context.Context, owner string, f CallFilter) ([]Call, error) {
	where := []string{"i.owner_id = $1"}
	args := []any{owner}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.IntegrationID != uuid.Nil {
		add("c.integration_id = $%d", f.IntegrationID)
	}
	if f.CampaignID != uuid.Nil {
		add("c.campaign_id = $%d", f.CampaignID)
	}
	if f.Status != "" {
		add("c.status = $%d", string(f.Status))
	}
	if f.Phone != "" {
		add("c.phone_number = $%d", f.Phone)
	}
	if !f.CreatedFrom.IsZero() {
		add("c.created_at >= $%d", f.CreatedFrom)
	}
	if !f.CreatedTo.IsZero() {
		add("c.created_at < $%d", f.CreatedTo)
	}
	order := "c.created_at DESC, c.id DESC"
	if f.Order == "createdAt" {
		order = "c.created_at, c.id"
	}
	args = append(args, f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, `SELECT `+prefixed("c.", callColumns)+` FROM calls c
		JOIN integrations i ON i.id = c.integration_id WHERE `+strings.Join(where, " AND ")+`
		ORDER BY `+order+fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Call{}
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Stats counts an integration's calls by where they are. Active counts
// every call holding a slot, cancelled-but-live ones included.
type Stats struct {
	Active          int `json:"active"`
	Limit           int `json:"limit"`
	Queued          int `json:"queued"`
	RetryScheduled  int `json:"retryScheduled"`
	WaitingPostcall int `json:"waitingPostcall"`
	Completed       int `json:"completed"`
	Failed          int `json:"failed"`
	Cancelled       int `json:"cancelled"`
}

// IntegrationStats counts an integration's calls.
func (s *Store) IntegrationStats(ctx context.Context, id uuid.UUID) (Stats, error) {
	var st Stats
	// A call cancelled while live at the platform is cancelled and still
	// holds its slot: it counts in both.
	rows, err := s.pool.Query(ctx, `SELECT status, count(*), count(*) FILTER (WHERE slot_taken_at IS NOT NULL)
		FROM calls WHERE integration_id = $1 GROUP BY status`, id)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var status callstate.Status
		var n, holding int
		if err := rows.Scan(&status, &n, &holding); err != nil {
			return st, err
		}
		st.Active += holding
		switch status {
		case callstate.Queued:
			st.Queued = n
		case callstate.RetryScheduled:
			st.RetryScheduled = n
		case callstate.WaitingPostcall:
			st.WaitingPostcall = n
		case callstate.Completed:
			st.Completed = n
		case callstate.Failed:
			st.Failed = n
		case callstate.Cancelled:
			st.Cancelled = n
		}
	}
	if err := rows.Err(); err != nil {
		return st, err
	}
	cfg, err := s.Config(ctx, id)
	st.Limit = cfg.CallHandling.ConcurrencyLimit
	return st, err
}

// Gauge is one integration's live counts, for metrics.
type Gauge struct {
	IntegrationID uuid.UUID
	Slug          string
	Active        int
	Queued        int
	Limit         int
}

// Gauges returns live counts for every integration.
func (s *Store) Gauges(ctx context.Context) ([]Gauge, error) {
	rows, err := s.pool.Query(ctx, `SELECT i.id, i.slug,
			count(*) FILTER (WHERE c.slot_taken_at IS NOT NULL),
			count(*) FILTER (WHERE c.status = 'queued'),
			COALESCE((cfg.value->>'concurrency_limit')::int, 3)
		FROM integrations i
		LEFT JOIN calls c ON c.integration_id = i.id AND (c.status = 'queued' OR c.slot_taken_at IS NOT NULL)
		LEFT JOIN integration_config cfg ON cfg.integration_id = i.id AND cfg.key = 'call_handling'
		GROUP BY i.id, i.slug, cfg.value`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Gauge
	for rows.Next() {
		var g Gauge
		if err := rows.Scan(&g.IntegrationID, &g.Slug, &g.Active, &g.Queued, &g.Limit); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// IntegrationsWithQueued lists integrations that have queued calls and may
// dial, for the dispatcher's periodic sweep.
func (s *Store) IntegrationsWithQueued(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT i.id FROM integrations i WHERE i.status IN ('active', 'has_errors')
		AND EXISTS (SELECT 1 FROM calls c WHERE c.integration_id = i.id AND c.status = 'queued' AND c.not_before IS NULL)`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// CancelCall cancels a call of owner's. A terminal call is ErrConflict.
func (s *Store) CancelCall(ctx context.Context, owner string, id uuid.UUID, traceID string, now time.Time) (Call, Applied, error) {
	c, err := s.GetCall(ctx, owner, id)
	if err != nil {
		return c, Applied{}, err
	}
	applied, err := s.ApplyEvents(ctx, []CallEvent{{IntegrationID: c.IntegrationID, CallID: id,
		Event: callstate.Event{Kind: callstate.Cancel}, Detail: map[string]any{"by": owner}, TraceID: traceID, At: now}})
	if err != nil {
		return c, Applied{}, err
	}
	if !applied[0].Decision.Changed {
		return c, applied[0], &ConflictError{Message: "call is already " + string(applied[0].Decision.From)}
	}
	c, err = s.GetCall(ctx, owner, id)
	return c, applied[0], err
}

// ContextByPhone returns the dynamic variables of the latest live call to
// phone, for agent-init. It returns nil when there is none.
func (s *Store) ContextByPhone(ctx context.Context, integrationID uuid.UUID, phone string) (json.RawMessage, uuid.UUID, error) {
	var vars json.RawMessage
	var id uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT dynamic_variables, id FROM calls WHERE integration_id = $1 AND phone_number = $2
		ORDER BY (status IN ('initiated', 'in_progress')) DESC, created_at DESC LIMIT 1`, integrationID, phone).Scan(&vars, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, uuid.Nil, nil
	}
	return vars, id, err
}
