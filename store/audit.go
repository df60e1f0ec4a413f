package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ActorCLI is the actor of changes made with the callqueue command; a
// change through the admin API is made by the token's owner.
const ActorCLI = "cli"

// Audit actions and resources.
const (
	AuditCreate = "create"
	AuditUpdate = "update"
	AuditDelete = "delete"
	AuditRotate = "rotate"
	AuditRevoke = "revoke"

	ResourceIntegration  = "integration"
	ResourceWebhookToken = "webhook_token"
	ResourceConfig       = "config"
	ResourceToken        = "token"
	// Secrets and credentials are recorded under their kind: KindSecret,
	// KindCredential.
)

// AuditEntry is one recorded change.
type AuditEntry struct {
	ID int64 `json:"id"`
	// IntegrationID is null for owner-level changes (tokens) and for the
	// deletion of an integration, whose id is then in ResourceID: the entry
	// must outlive the integration, and the foreign key cascades.
	IntegrationID *uuid.UUID      `json:"integrationId"`
	Actor         string          `json:"actor"`
	Action        string          `json:"action"`
	Resource      string          `json:"resource"`
	ResourceID    *string         `json:"resourceId"`
	Before        json.RawMessage `json:"before"`
	After         json.RawMessage `json:"after"`
	CreatedAt     time.Time       `json:"createdAt"`
}

// Audit describes a change to record. Before and After must never hold a
// secret's value or a token: callers pass what the API would show
// (previews, key names), and nothing at all for a rotated webhook token.
type Audit struct {
	IntegrationID uuid.UUID // uuid.Nil for owner-level changes (tokens)
	Owner         string
	Actor         string // the token's owner, or ActorCLI
	Action        string
	Resource      string
	ResourceID    string
	Before, After any
}

// recordAudit writes an audit entry in the change's transaction, so that
// a change and its entry commit or roll back together.
func recordAudit(ctx context.Context, tx pgx.Tx, a Audit) error {
	var integration *uuid.UUID
	if a.IntegrationID != uuid.Nil {
		integration = &a.IntegrationID
	}
	before, err := auditJSON(a.Before)
	if err != nil {
		return fmt.Errorf("audit %s %s: before: %w", a.Action, a.Resource, err)
	}
	after, err := auditJSON(a.After)
	if err != nil {
		return fmt.Errorf("audit %s %s: after: %w", a.Action, a.Resource, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_logs (integration_id, owner_id, actor, action, resource, resource_id, before, after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, integration, a.Owner, a.Actor, a.Action, a.Resource, nullable(a.ResourceID),
		before, after)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", a.Action, a.Resource, err)
	}
	return nil
}

// auditJSON encodes a before/after value; nothing (nil or JSON null) is
// SQL NULL.
func auditJSON(v any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil || bytes.Equal(b, []byte("null")) {
		return nil, err
	}
	return b, nil
}

const auditColumns = `id, integration_id, actor, action, resource, resource_id, before, after, created_at`

func collectAudit(rows pgx.Rows, err error) ([]AuditEntry, error) {
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.IntegrationID, &e.Actor, &e.Action, &e.Resource, &e.ResourceID, &e.Before, &e.After, &e.CreatedAt)
		return e, err
	})
	if out == nil {
		out = []AuditEntry{}
	}
	return out, err
}

// AuditLog pages through an integration's audit entries, newest first, and
// returns their total. Callers check the integration is the caller's.
func (s *Store) AuditLog(ctx context.Context, integrationID uuid.UUID, limit, offset int) ([]AuditEntry, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE integration_id = $1`, integrationID).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := collectAudit(s.pool.Query(ctx, `SELECT `+auditColumns+`
		FROM audit_logs WHERE integration_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`, integrationID, limit, offset))
	return out, total, err
}

// OwnerAuditLog pages through every audit entry of owner, newest first:
// those of live integrations, of deleted ones and of tokens.
func (s *Store) OwnerAuditLog(ctx context.Context, owner string, limit, offset int) ([]AuditEntry, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE owner_id = $1`, owner).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := collectAudit(s.pool.Query(ctx, `SELECT `+auditColumns+`
		FROM audit_logs WHERE owner_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`, owner, limit, offset))
	return out, total, err
}
