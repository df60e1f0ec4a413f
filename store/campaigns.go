package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
)

// Campaign statuses (contract §6).
const (
	// ResourceCampaign is the audit log's name for campaign changes.
	ResourceCampaign = "campaign"

	CampaignScheduled = "scheduled"
	CampaignRunning   = "running"
	CampaignPaused    = "paused"
	CampaignCompleted = "completed"
	CampaignCancelled = "cancelled"
)

// Campaign is a list of recipients dialled through one integration under
// its own limit, schedule, calling window and retry policy. Its recipients
// are ordinary calls with CampaignID set.
type Campaign struct {
	ID               uuid.UUID        `json:"id"`
	IntegrationID    uuid.UUID        `json:"integrationId"`
	Name             string           `json:"name"`
	Status           string           `json:"status"`
	ConcurrencyLimit *int             `json:"concurrencyLimit"`
	Priority         int              `json:"priority"`
	StartAt          *time.Time       `json:"startAt"`
	CallingWindow    json.RawMessage  `json:"callingWindow"`
	RetryPolicy      json.RawMessage  `json:"retryPolicy"`
	MaxAttempts      *int             `json:"maxAttempts"`
	Effective        CampaignHandling `json:"effective"`
	Progress         CampaignProgress `json:"progress"`
	CreatedAt        time.Time        `json:"createdAt"`
	UpdatedAt        time.Time        `json:"updatedAt"`
}

// CampaignHandling is what is in force for a campaign's calls: its own
// calling window, retry policy and max attempts, else the integration's.
type CampaignHandling struct {
	CallingWindow *config.CallingWindow `json:"callingWindow"`
	RetryPolicy   *config.RetryPolicy   `json:"retryPolicy"`
	MaxAttempts   int                   `json:"maxAttempts"`
}

// CampaignProgress counts a campaign's recipients by where their calls are.
type CampaignProgress struct {
	Total           int `json:"total"`
	Queued          int `json:"queued"`
	Active          int `json:"active"`
	RetryScheduled  int `json:"retryScheduled"`
	WaitingPostcall int `json:"waitingPostcall"`
	Completed       int `json:"completed"`
	Failed          int `json:"failed"`
	Cancelled       int `json:"cancelled"`
	Suppressed      int `json:"suppressed"`
}

// CampaignSpec is what an operator sets on a campaign. Handling is the
// overlay on the integration's call_handling: a JSON object with any of
// retry_policy, max_attempts and calling_window.
type CampaignSpec struct {
	Name             string
	ConcurrencyLimit *int
	Priority         int
	StartAt          *time.Time
	Handling         map[string]json.RawMessage
}

// Overlay is the spec's call handling overlay as stored.
func (s CampaignSpec) Overlay() json.RawMessage {
	raw, _ := json.Marshal(s.Handling) // a map of raw JSON values cannot fail to marshal
	if s.Handling == nil {
		raw = []byte(`{}`)
	}
	return raw
}

const campaignColumns = `c.id, c.integration_id, c.name, c.status, c.concurrency_limit, c.priority, c.start_at, c.call_handling,
	c.created_at, c.updated_at, c.removed_completed, c.removed_failed, c.removed_cancelled, c.removed_suppressed,
	(SELECT value FROM integration_config WHERE integration_id = c.integration_id AND key = 'call_handling')`

// progressColumns count a campaign's calls (alias k) for CampaignProgress.
const progressColumns = `count(k.id), count(*) FILTER (WHERE k.status = 'queued'),
	count(*) FILTER (WHERE k.slot_taken_at IS NOT NULL), count(*) FILTER (WHERE k.status = 'retry_scheduled'),
	count(*) FILTER (WHERE k.status = 'waiting_postcall'), count(*) FILTER (WHERE k.status = 'completed'),
	count(*) FILTER (WHERE k.status = 'failed'),
	count(*) FILTER (WHERE k.status = 'cancelled' AND k.outcome IS DISTINCT FROM 'suppressed'),
	count(*) FILTER (WHERE k.outcome = 'suppressed')`

func scanCampaign(row pgx.Row) (Campaign, error) {
	var c Campaign
	var overlay map[string]json.RawMessage
	var handling json.RawMessage
	p := &c.Progress
	var removed CampaignProgress // calls removed by retention or erasure
	err := row.Scan(&c.ID, &c.IntegrationID, &c.Name, &c.Status, &c.ConcurrencyLimit, &c.Priority, &c.StartAt, &overlay,
		&c.CreatedAt, &c.UpdatedAt, &removed.Completed, &removed.Failed, &removed.Cancelled, &removed.Suppressed, &handling,
		&p.Total, &p.Queued, &p.Active, &p.RetryScheduled, &p.WaitingPostcall, &p.Completed, &p.Failed, &p.Cancelled, &p.Suppressed)
	if err != nil {
		return c, notFound(err)
	}
	p.Completed += removed.Completed
	p.Failed += removed.Failed
	p.Cancelled += removed.Cancelled
	p.Suppressed += removed.Suppressed
	p.Total += removed.Completed + removed.Failed + removed.Cancelled + removed.Suppressed
	c.setOverlay(overlay)
	stored := map[string]json.RawMessage{}
	if len(handling) > 0 {
		stored[config.KeyCallHandling] = handling
	}
	integration := config.Decode(stored).CallHandling
	effective, err := integration.Overlay(c.spec().Overlay())
	if err != nil {
		effective = integration
	}
	c.Effective = CampaignHandling{CallingWindow: effective.CallingWindow, RetryPolicy: effective.RetryPolicy,
		MaxAttempts: effective.MaxAttempts}
	return c, nil
}

func orNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage(`null`)
	}
	return raw
}

// spec is the campaign's settable part.
func (c Campaign) spec() CampaignSpec {
	s := CampaignSpec{Name: c.Name, ConcurrencyLimit: c.ConcurrencyLimit, Priority: c.Priority, StartAt: c.StartAt,
		Handling: map[string]json.RawMessage{}}
	if string(c.CallingWindow) != "null" {
		s.Handling["calling_window"] = c.CallingWindow
	}
	if string(c.RetryPolicy) != "null" {
		s.Handling["retry_policy"] = c.RetryPolicy
	}
	if c.MaxAttempts != nil {
		s.Handling["max_attempts"] = json.RawMessage(fmt.Sprint(*c.MaxAttempts))
	}
	return s
}

// auditSpec is how a campaign's settings appear in the audit log.
func auditSpec(s CampaignSpec) map[string]any {
	return map[string]any{"name": s.Name, "concurrencyLimit": s.ConcurrencyLimit, "priority": s.Priority, "startAt": s.StartAt,
		"callHandling": s.Handling}
}

// startStatus is where a campaign that may dial stands at now.
func startStatus(startAt *time.Time, now time.Time) string {
	if startAt != nil && startAt.After(now) {
		return CampaignScheduled
	}
	return CampaignRunning
}

// CreateCampaign creates a campaign of one of owner's integrations.
func (s *Store) CreateCampaign(ctx context.Context, owner string, integrationID uuid.UUID, spec CampaignSpec, now time.Time) (Campaign, error) {
	id := uuid.Must(uuid.NewV7())
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := ownIntegration(ctx, tx, owner, integrationID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO campaigns (id, integration_id, name, status, concurrency_limit, priority, start_at,
				call_handling, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`, id, integrationID, spec.Name, startStatus(spec.StartAt, now),
			spec.ConcurrencyLimit, spec.Priority, spec.StartAt, spec.Overlay(), now)
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: owner, Action: AuditCreate,
			Resource: ResourceCampaign, ResourceID: id.String(), After: auditSpec(spec)})
	})
	if err != nil {
		return Campaign{}, err
	}
	return s.GetCampaign(ctx, owner, id)
}

func ownIntegration(ctx context.Context, q querier, owner string, integrationID uuid.UUID) error {
	var ok bool
	err := q.QueryRow(ctx, `SELECT true FROM integrations WHERE id = $1 AND owner_id = $2`, integrationID, owner).Scan(&ok)
	return notFound(err)
}

// GetCampaign returns one of owner's campaigns with its progress.
func (s *Store) GetCampaign(ctx context.Context, owner string, id uuid.UUID) (Campaign, error) {
	return scanCampaign(s.pool.QueryRow(ctx, `SELECT `+campaignColumns+`, p.* FROM campaigns c
		JOIN integrations i ON i.id = c.integration_id
		CROSS JOIN LATERAL (SELECT `+progressColumns+` FROM calls k WHERE k.campaign_id = c.id) p
		WHERE c.id = $1 AND i.owner_id = $2`, id, owner))
}

// CampaignFilter selects campaigns for a list.
type CampaignFilter struct {
	IntegrationID uuid.UUID
	Status        string
	Limit, Offset int
}

// ListCampaigns lists owner's campaigns, newest first, with progress.
func (s *Store) ListCampaigns(ctx context.Context, owner string, f CampaignFilter) ([]Campaign, error) {
	var q listQuery
	q.filter("i.owner_id = $%d", owner)
	if f.IntegrationID != uuid.Nil {
		q.filter("c.integration_id = $%d", f.IntegrationID)
	}
	if f.Status != "" {
		q.filter("c.status = $%d", f.Status)
	}
	query := `SELECT ` + campaignColumns + `, p.* FROM campaigns c
		JOIN integrations i ON i.id = c.integration_id
		CROSS JOIN LATERAL (SELECT ` + progressColumns + ` FROM calls k WHERE k.campaign_id = c.id) p
		WHERE ` + q.conditions() + ` ORDER BY c.created_at DESC, c.id DESC` + q.page(f.Limit, f.Offset)
	rows, err := s.pool.Query(ctx, query, q.args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanCampaign)
}

// UpdateCampaign changes a campaign's settings: change gets the current
// ones and the integration's configuration, and edits or refuses them. The
// change applies to every dial that has not happened yet: calls waiting for
// a calling window are looked at again, and calls not finished take the new
// max attempts and retry policy (applyPolicyChange).
func (s *Store) UpdateCampaign(ctx context.Context, owner string, id uuid.UUID, now time.Time,
	change func(*CampaignSpec, config.Integration) error) (Campaign, error) {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := lockCampaign(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		// The integration's row lock orders the change against claims (as
		// ChangeCampaignStatus): once this commits, no claim still dials
		// under the old limit, window or attempts.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM integrations WHERE id = $1 FOR UPDATE`, c.IntegrationID); err != nil {
			return err
		}
		raw, err := loadConfig(ctx, tx, c.IntegrationID)
		if err != nil {
			return err
		}
		spec := c.spec()
		if err := change(&spec, config.Decode(raw)); err != nil {
			return err
		}
		status := c.Status
		if status == CampaignScheduled || status == CampaignRunning {
			status = startStatus(spec.StartAt, now)
		}
		if _, err := tx.Exec(ctx, `UPDATE campaigns SET name = $2, concurrency_limit = $3, priority = $4, start_at = $5,
				call_handling = $6, status = $7, updated_at = $8 WHERE id = $1`,
			id, spec.Name, spec.ConcurrencyLimit, spec.Priority, spec.StartAt, spec.Overlay(), status, now); err != nil {
			return err
		}
		if _, err := config.Decode(raw).CallHandling.Overlay(spec.Overlay()); err != nil {
			return err
		}
		// Waiting calls are looked at again by the next claim, under the
		// new window.
		if _, err := tx.Exec(ctx, `UPDATE calls SET not_before = NULL WHERE campaign_id = $1 AND status = 'queued'
			AND not_before IS NOT NULL`, id); err != nil {
			return err
		}
		if err := applyPolicyChange(ctx, tx, c.IntegrationID, &id, config.Decode(raw), now); err != nil {
			return err
		}
		if err := releaseWindowDeferrals(ctx, tx, c.IntegrationID, &id, now); err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: c.IntegrationID, Owner: owner, Actor: owner, Action: AuditUpdate,
			Resource: ResourceCampaign, ResourceID: id.String(), Before: auditSpec(c.spec()), After: auditSpec(spec)})
	})
	if err != nil {
		return Campaign{}, err
	}
	return s.GetCampaign(ctx, owner, id)
}

func lockCampaign(ctx context.Context, tx pgx.Tx, owner string, id uuid.UUID) (Campaign, error) {
	var c Campaign
	var overlay map[string]json.RawMessage
	err := tx.QueryRow(ctx, `SELECT c.id, c.integration_id, c.name, c.status, c.concurrency_limit, c.priority, c.start_at, c.call_handling
		FROM campaigns c JOIN integrations i ON i.id = c.integration_id WHERE c.id = $1 AND i.owner_id = $2 FOR UPDATE OF c`,
		id, owner).Scan(&c.ID, &c.IntegrationID, &c.Name, &c.Status, &c.ConcurrencyLimit, &c.Priority, &c.StartAt, &overlay)
	if err != nil {
		return c, notFound(err)
	}
	c.setOverlay(overlay)
	return c, nil
}

// Campaign actions.
const (
	CampaignPause  = "pause"
	CampaignResume = "resume"
	CampaignCancel = "cancel"
)

// ChangeCampaignStatus pauses, resumes or cancels a campaign. Pausing
// stops new dials at once (claims only take running campaigns); cancelling
// cancels every call not dialled yet, in one statement; live calls finish
// either way. A change the status does not allow is a *ConflictError.
func (s *Store) ChangeCampaignStatus(ctx context.Context, owner string, id uuid.UUID, action string, now time.Time) (Campaign, error) {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		c, err := lockCampaign(ctx, tx, owner, id)
		if err != nil {
			return err
		}
		// The integration's row lock orders the change against claims: once
		// this commits, no claim still sees the old status.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM integrations WHERE id = $1 FOR UPDATE`, c.IntegrationID); err != nil {
			return err
		}
		var to string
		switch {
		case action == CampaignPause && (c.Status == CampaignScheduled || c.Status == CampaignRunning):
			to = CampaignPaused
		case action == CampaignResume && c.Status == CampaignPaused:
			to = startStatus(c.StartAt, now)
		case action == CampaignCancel && c.Status != CampaignCompleted && c.Status != CampaignCancelled:
			to = CampaignCancelled
		default:
			return &ConflictError{Message: "a " + c.Status + " campaign cannot " + action}
		}
		if _, err := tx.Exec(ctx, `UPDATE campaigns SET status = $2, updated_at = $3 WHERE id = $1`, id, to, now); err != nil {
			return err
		}
		if err := recordAudit(ctx, tx, Audit{IntegrationID: c.IntegrationID, Owner: owner, Actor: owner, Action: action,
			Resource: ResourceCampaign, ResourceID: id.String(), Before: map[string]string{"status": c.Status},
			After: map[string]string{"status": to}}); err != nil {
			return err
		}
		if to != CampaignCancelled {
			return nil
		}
		_, err = tx.Exec(ctx, `WITH gone AS (
				UPDATE calls c SET status = 'cancelled', outcome = 'cancelled', next_retry_at = NULL, not_before = NULL, updated_at = $2
				FROM (SELECT id, status FROM calls WHERE campaign_id = $1 AND status IN ('queued', 'retry_scheduled') FOR UPDATE) old
				WHERE c.id = old.id
				RETURNING c.id, c.attempt, old.status AS from_status, c.trace_id)
			INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at)
			SELECT id, attempt, 'cancel', from_status, 'cancelled', '{"by": "campaign", "outcome": "cancelled"}', trace_id, $2 FROM gone`,
			id, now)
		if err != nil {
			return err
		}
		return cancelLiveCalls(ctx, tx, c.IntegrationID, id, now)
	})
	if err != nil {
		return Campaign{}, err
	}
	return s.GetCampaign(ctx, owner, id)
}

// AdvanceCampaigns starts scheduled campaigns whose time has come and
// completes running ones whose every call is over. It returns the
// integrations that have a campaign to dial now.
func (s *Store) AdvanceCampaigns(ctx context.Context, now time.Time) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `UPDATE campaigns SET status = 'running', updated_at = $1
		WHERE status = 'scheduled' AND (start_at IS NULL OR start_at <= $1) RETURNING integration_id`, now)
	if err != nil {
		return nil, err
	}
	started, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	return started, s.completeCampaigns(ctx, now)
}

// completeCampaigns marks completed the running campaigns whose every call
// is terminal. The campaigns are locked first, passing by those an upload
// holds, and their calls counted by a later statement: one statement
// would wait for an upload's lock and then judge from a snapshot taken
// before the upload's recipients were committed.
func (s *Store) completeCampaigns(ctx context.Context, now time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.id FROM campaigns c
			WHERE c.status = 'running'
			  AND EXISTS (SELECT 1 FROM calls k WHERE k.campaign_id = c.id)
			  AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.campaign_id = c.id
			                  AND k.status IN ('queued', 'initiated', 'in_progress', 'waiting_postcall', 'retry_scheduled'))
			FOR UPDATE OF c SKIP LOCKED`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE campaigns c SET status = 'completed', updated_at = $2
			WHERE c.id = ANY($1) AND c.status = 'running'
			  AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.campaign_id = c.id
			                  AND k.status IN ('queued', 'initiated', 'in_progress', 'waiting_postcall', 'retry_scheduled'))`, ids, now)
		return err
	})
}

// ReleaseWindows puts back in the ready queue the calls whose calling
// window has opened, at most limit of them, and returns their
// integrations. The index on not_before makes this a range scan of just
// those calls, however many wait.
func (s *Store) ReleaseWindows(ctx context.Context, now time.Time, limit int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			UPDATE calls SET not_before = NULL
			WHERE id IN (SELECT id FROM calls WHERE status = 'queued' AND not_before <= $1
				ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING integration_id)
		SELECT DISTINCT integration_id FROM due`, now, limit)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err := s.answered(ctx, err); err != nil {
		return nil, err
	}
	return ids, nil
}

// ErrCampaignClosed: recipients cannot be added to a cancelled campaign.
var ErrCampaignClosed = errors.New("campaign is cancelled")

// setOverlay shows the campaign's stored call_handling overlay in its
// contract fields.
func (c *Campaign) setOverlay(overlay map[string]json.RawMessage) {
	c.CallingWindow, c.RetryPolicy = orNull(overlay["calling_window"]), orNull(overlay["retry_policy"])
	if raw, ok := overlay["max_attempts"]; ok {
		var n int
		if json.Unmarshal(raw, &n) == nil {
			c.MaxAttempts = &n
		}
	}
}

// cancelLiveCalls cancels the calls of a cancelled campaign that are being
// dialled or talking: each finishes its conversation (there is no
// hang-up), keeping its slot until then, and ends cancelled, never
// scheduled for a retry that a cancelled campaign's lane would not claim.
func cancelLiveCalls(ctx context.Context, tx pgx.Tx, integrationID, campaignID uuid.UUID, now time.Time) error {
	rows, err := tx.Query(ctx, `SELECT id FROM calls WHERE campaign_id = $1 AND status IN ('initiated', 'in_progress')`, campaignID)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return err
	}
	events := make([]CallEvent, len(ids))
	for i, callID := range ids {
		events[i] = CallEvent{IntegrationID: integrationID, CallID: callID, At: now,
			Event: callstate.Event{Kind: callstate.Cancel}, Detail: map[string]any{"by": "campaign"}}
	}
	_, err = applyEvents(ctx, tx, events, nil, nil) // a cancel takes no slot
	return err
}
