package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
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
	// IntegrationID is null for owner-level changes (tokens). Entries keep
	// it after the integration is deleted: the log is append-only.
	IntegrationID *uuid.UUID `json:"integrationId"`
	Actor         string     `json:"actor"`
	// TokenID is the admin token the change was made with (null from the
	// command line); ClientIP the address it came from.
	TokenID    *uuid.UUID      `json:"tokenId"`
	ClientIP   *string         `json:"clientIp"`
	Action     string          `json:"action"`
	Resource   string          `json:"resource"`
	ResourceID *string         `json:"resourceId"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	CreatedAt  time.Time       `json:"createdAt"`
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

// AuditSource is where a change comes from beyond its actor: the admin
// token and the client's address. The admin API puts it in the request's
// context once it has authenticated the token, so every change the request
// makes records it without each store method taking it.
type AuditSource struct {
	TokenID  uuid.UUID
	ClientIP netip.Addr
}

type auditSourceKey struct{}

// WithAuditSource returns ctx carrying src for the audit entries written
// under it.
func WithAuditSource(ctx context.Context, src AuditSource) context.Context {
	return context.WithValue(ctx, auditSourceKey{}, src)
}

func auditSource(ctx context.Context) (token *uuid.UUID, ip *string) {
	src, _ := ctx.Value(auditSourceKey{}).(AuditSource)
	if src.TokenID != uuid.Nil {
		token = &src.TokenID
	}
	if src.ClientIP.IsValid() {
		s := src.ClientIP.Unmap().String()
		ip = &s
	}
	return token, ip
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
	token, ip := auditSource(ctx)
	_, err = tx.Exec(ctx, `INSERT INTO audit_logs (integration_id, owner_id, actor, action, resource, resource_id, before, after,
		token_id, client_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, integration, a.Owner, a.Actor, a.Action, a.Resource,
		nullable(a.ResourceID), before, after, token, ip)
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

const auditColumns = `id, integration_id, actor, token_id, host(client_ip), action, resource, resource_id, before, after, created_at`

func collectAudit(rows pgx.Rows, err error) ([]AuditEntry, error) {
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.IntegrationID, &e.Actor, &e.TokenID, &e.ClientIP, &e.Action, &e.Resource, &e.ResourceID, &e.Before, &e.After, &e.CreatedAt)
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

// OwnerAuditLog pages through owner's audit entries, newest first: those
// of live integrations, of deleted ones and of tokens; only those of
// integration when it is not uuid.Nil, even a deleted one. The owner of
// an entry is recorded with it, so another owner's integration id finds
// nothing.
func (s *Store) OwnerAuditLog(ctx context.Context, owner string, integration uuid.UUID, limit, offset int) ([]AuditEntry, int, error) {
	const where = `FROM audit_logs WHERE owner_id = $1 AND ($2::uuid IS NULL OR integration_id = $2)`
	id := nilUUID(integration)
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) `+where, owner, id).Scan(&total); err != nil {
		return nil, 0, err
	}
	out, err := collectAudit(s.pool.Query(ctx, `SELECT `+auditColumns+` `+where+` ORDER BY id DESC LIMIT $3 OFFSET $4`,
		owner, id, limit, offset))
	return out, total, err
}
