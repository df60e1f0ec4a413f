package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
)

// GetCall returns a call of one of owner's integrations. An empty owner
// owns nothing: code that is no request's reads calls with CallByID.
func (s *Store) GetCall(ctx context.Context, owner string, id uuid.UUID) (Call, error) {
	return scanCall(s.pool.QueryRow(ctx, `SELECT `+prefixed("c.", callColumns)+` FROM calls c
		JOIN integrations i ON i.id = c.integration_id WHERE c.id = $1 AND i.owner_id = $2`, id, owner))
}

// CallByID returns any call, whoever owns it: for the service's own
// components and tools, never for a request.
func (s *Store) CallByID(ctx context.Context, id uuid.UUID) (Call, error) {
	return scanCall(s.pool.QueryRow(ctx, `SELECT `+callColumns+` FROM calls WHERE id = $1`, id))
}

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
		if !strings.HasPrefix(parts[i], "NULL") { // a column left out of a list
			parts[i] = prefix + parts[i]
		}
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

// Attempt is one dial of a call, as the call's detail shows it.
type Attempt struct {
	Attempt        int        `json:"attempt"`
	StartedAt      time.Time  `json:"startedAt"`
	EndedAt        *time.Time `json:"endedAt"`
	Outcome        *string    `json:"outcome"`
	DurationSecs   *float64   `json:"durationSecs"`
	ExternalCallID *string    `json:"externalCallId"`
	ConversationID *string    `json:"conversationId"`
	// CallerID is the caller number it was dialled from (voice.caller_ids).
	CallerID *string `json:"callerId"`
}

// CallAttempts returns a call's attempts, first first.
func (s *Store) CallAttempts(ctx context.Context, id uuid.UUID) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT attempt, started_at, ended_at, outcome, duration_secs, external_call_id,
			conversation_id, caller_id
		FROM call_attempts WHERE call_id = $1 ORDER BY attempt`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var a Attempt
		if err := rows.Scan(&a.Attempt, &a.StartedAt, &a.EndedAt, &a.Outcome, &a.DurationSecs, &a.ExternalCallID,
			&a.ConversationID, &a.CallerID); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// CallFilter selects calls for a list.
type CallFilter struct {
	IntegrationID uuid.UUID
	CampaignID    uuid.UUID
	Status        callstate.Status
	Outcome       string
	Phone         string
	CreatedFrom   time.Time
	CreatedTo     time.Time
	Order         string // createdAt or -createdAt (default)
	Limit         int
	Offset        int
}

// ListCalls returns one page of owner's calls, without what only the
// detail shows (transcripts, analysis; see callListColumns).
func (s *Store) ListCalls(ctx context.Context, owner string, f CallFilter) ([]Call, error) {
	var q listQuery
	q.filter("i.owner_id = $%d", owner)
	if f.IntegrationID != uuid.Nil {
		q.filter("c.integration_id = $%d", f.IntegrationID)
	}
	if f.CampaignID != uuid.Nil {
		q.filter("c.campaign_id = $%d", f.CampaignID)
	}
	if f.Status != "" {
		q.filter("c.status = $%d", string(f.Status))
	}
	if f.Outcome != "" {
		q.filter("c.outcome = $%d", f.Outcome)
	}
	if f.Phone != "" {
		q.filter("c.phone_number = $%d", f.Phone)
	}
	if !f.CreatedFrom.IsZero() {
		q.filter("c.created_at >= $%d", f.CreatedFrom)
	}
	if !f.CreatedTo.IsZero() {
		q.filter("c.created_at < $%d", f.CreatedTo)
	}
	order := "c.created_at DESC, c.id DESC"
	if f.Order == "createdAt" {
		order = "c.created_at, c.id"
	}
	query := `SELECT ` + prefixed("c.", callListColumns) + ` FROM calls c
		JOIN integrations i ON i.id = c.integration_id WHERE ` + q.conditions() + ` ORDER BY ` + order + q.page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, query, q.args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanCall)
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

// Gauge is one integration's live counts, for metrics; or, with
// CampaignID set, the part of them that is one running or paused
// campaign's, and how many of that campaign's calls are done.
type Gauge struct {
	IntegrationID uuid.UUID
	Slug          string
	CampaignID    uuid.UUID
	Active        int
	Queued        int
	Done          int
	Limit         int
}

// liveGaugesSQL counts each integration's live and queued calls from
// calls_live: its cost grows with the calls under way, not with the history.
const liveGaugesSQL = `SELECT i.id, i.slug, COALESCE(k.id, '00000000-0000-0000-0000-000000000000'),
		count(*) FILTER (WHERE c.slot_taken_at IS NOT NULL),
		count(*) FILTER (WHERE c.status = 'queued'),
		COALESCE((cfg.value->>'concurrency_limit')::int, 3)
	FROM integrations i
	LEFT JOIN calls c ON c.integration_id = i.id AND (c.status = 'queued' OR c.slot_taken_at IS NOT NULL)
	LEFT JOIN campaigns k ON k.id = c.campaign_id AND k.status IN ('running', 'paused')
	LEFT JOIN integration_config cfg ON cfg.integration_id = i.id AND cfg.key = 'call_handling'
	GROUP BY i.id, i.slug, k.id, cfg.value
	ORDER BY i.id, k.id NULLS FIRST`

// Gauges returns live counts for every integration, split by its running
// and paused campaigns. Only those campaigns have rows of their own, so the
// series stay as many as the campaigns being dialled: a finished campaign's
// calls count in its integration's row, and it drops out.
func (s *Store) Gauges(ctx context.Context) ([]Gauge, error) {
	rows, err := s.pool.Query(ctx, liveGaugesSQL)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Gauge, error) {
		var g Gauge
		err := row.Scan(&g.IntegrationID, &g.Slug, &g.CampaignID, &g.Active, &g.Queued, &g.Limit)
		return g, err
	})
	if err != nil {
		return nil, err
	}
	// Every running or paused campaign has a row, with its done calls,
	// even when none of its calls is live or queued.
	rows, err = s.pool.Query(ctx, `SELECT k.integration_id, k.id,
			count(c.id) FILTER (WHERE c.status IN ('completed', 'failed', 'cancelled'))
		FROM campaigns k LEFT JOIN calls c ON c.campaign_id = k.id
		WHERE k.status IN ('running', 'paused')
		GROUP BY k.integration_id, k.id`)
	if err != nil {
		return nil, err
	}
	type key struct{ integration, campaign uuid.UUID }
	index, integration := make(map[key]int, len(out)), make(map[uuid.UUID]int, len(out))
	for i, g := range out {
		index[key{g.IntegrationID, g.CampaignID}] = i
		integration[g.IntegrationID] = i
	}
	var done []Gauge
	if done, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Gauge, error) {
		var g Gauge
		err := row.Scan(&g.IntegrationID, &g.CampaignID, &g.Done)
		return g, err
	}); err != nil {
		return nil, err
	}
	for _, d := range done {
		if i, ok := index[key{d.IntegrationID, d.CampaignID}]; ok {
			out[i].Done = d.Done
			continue
		}
		i, ok := integration[d.IntegrationID]
		if !ok { // the integration's row is missing only if it was deleted between the two reads
			continue
		}
		d.Slug, d.Limit = out[i].Slug, out[i].Limit
		out = append(out, d)
	}
	return out, nil
}

// IntegrationsWithQueued lists integrations that have queued calls and may
// dial, for the dispatcher's periodic sweep.
//
// It skips through calls_ready from one integration to the next (a
// recursive CTE, one index probe per integration with a ready call): as an
// EXISTS per integration the planner made it a semi-join that read every
// queued call of the table, 29 ms a sweep with 100,000 queued, once a
// second beside the claims. Ordered by (integration_id, campaign_id), the
// probe can only be read from calls_ready, whose predicate is the query's:
// calls_status_counts would walk the calls waiting for a window too.
func (s *Store) IntegrationsWithQueued(ctx context.Context) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE ready (id) AS (
			(SELECT c.integration_id FROM calls c WHERE c.status = 'queued' AND c.not_before IS NULL
				ORDER BY c.integration_id, c.campaign_id LIMIT 1)
			UNION ALL
			SELECT (SELECT c.integration_id FROM calls c WHERE c.status = 'queued' AND c.not_before IS NULL AND c.integration_id > r.id
				ORDER BY c.integration_id, c.campaign_id LIMIT 1)
			FROM ready r WHERE r.id IS NOT NULL)
		SELECT i.id FROM ready r JOIN integrations i ON i.id = r.id WHERE i.status IN ('active', 'has_errors')`)
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
