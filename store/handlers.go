package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// Handler is a named action of an integration with its default arguments
// (seed 000 integration_handlers). Invoking it runs the built-in of the
// same name; the registry itself accepts any name.
type Handler struct {
	ID            uuid.UUID       `json:"id"`
	IntegrationID uuid.UUID       `json:"integrationId"`
	Name          string          `json:"name"`
	DefaultArgs   json.RawMessage `json:"defaultArgs"`
	CreatedAt     time.Time       `json:"createdAt"`
	UpdatedAt     time.Time       `json:"updatedAt"`
}

// HandlerFields are a handler's writable fields; nil means "not given".
type HandlerFields struct {
	Name        *string
	DefaultArgs json.RawMessage
}

// Audit vocabulary of handlers and setup (see audit.go).
const (
	resourceHandler = "handler"
	auditSync       = "sync"
	auditSetup      = "setup"
)

const handlerColumns = `h.id, h.integration_id, h.name, h.default_args, h.created_at, h.updated_at`

func scanHandler(row pgx.Row) (Handler, error) {
	var h Handler
	var args []byte
	err := row.Scan(&h.ID, &h.IntegrationID, &h.Name, &args, &h.CreatedAt, &h.UpdatedAt)
	h.DefaultArgs = args
	return h, notFound(err)
}

func handlerConflict(name string) error {
	return &ConflictError{Field: "name", Message: fmt.Sprintf("the integration already has a handler named %q", name)}
}

// emptyArgs is the default of default_args.
var emptyArgs = json.RawMessage(`{}`)

func argsOrEmpty(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return emptyArgs
	}
	return raw
}

// ownedIntegration locks owner's integration for a change to its handlers.
func ownedIntegration(ctx context.Context, tx pgx.Tx, owner string, id uuid.UUID) error {
	var found uuid.UUID
	err := tx.QueryRow(ctx, `SELECT id FROM integrations WHERE id = $1 AND owner_id = $2 FOR NO KEY UPDATE`,
		id, owner).Scan(&found)
	return notFound(err)
}

// ListHandlers lists owner's handlers, of one integration unless
// integrationID is uuid.Nil, oldest first. Another owner's integration is
// ErrNotFound.
func (s *Store) ListHandlers(ctx context.Context, owner string, integrationID uuid.UUID) ([]Handler, error) {
	var filter *uuid.UUID
	if integrationID != uuid.Nil {
		if _, err := s.GetIntegration(ctx, owner, integrationID); err != nil {
			return nil, err
		}
		filter = &integrationID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+handlerColumns+` FROM handlers h JOIN integrations i ON i.id = h.integration_id
		WHERE i.owner_id = $1 AND ($2::uuid IS NULL OR h.integration_id = $2)
		ORDER BY h.created_at, h.id`, owner, filter)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Handler, error) { return scanHandler(row) })
	if out == nil {
		out = []Handler{}
	}
	return out, err
}

// GetHandler returns owner's handler. A non-nil
// integrationID also requires the handler to belong to that integration.
func (s *Store) GetHandler(ctx context.Context, owner string, integrationID, id uuid.UUID) (Handler, error) {
	return scanHandler(s.pool.QueryRow(ctx, `SELECT `+handlerColumns+` FROM handlers h JOIN integrations i ON i.id = h.integration_id
		WHERE h.id = $1 AND i.owner_id = $2 AND ($3::uuid IS NULL OR h.integration_id = $3)`,
		id, owner, nilUUID(integrationID)))
}

func nilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// CreateHandler adds a handler to owner's integration. A name the
// integration already has is a ConflictError.
func (s *Store) CreateHandler(ctx context.Context, owner, actor string, integrationID uuid.UUID, name string, defaultArgs json.RawMessage) (Handler, error) {
	var h Handler
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := ownedIntegration(ctx, tx, owner, integrationID); err != nil {
			return err
		}
		if err := checkQuota(ctx, tx, "handlers", integrationID, 1, MaxHandlersPerIntegration, "name", "handlers"); err != nil {
			return err
		}
		var err error
		h, err = scanHandler(tx.QueryRow(ctx, `INSERT INTO handlers AS h (id, integration_id, name, default_args)
			VALUES ($1, $2, $3, $4) RETURNING `+handlerColumns, uuid.New(), integrationID, name, argsOrEmpty(defaultArgs)))
		if isUniqueViolation(err, "") {
			return handlerConflict(name)
		}
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: AuditCreate,
			Resource: resourceHandler, ResourceID: h.ID.String(), After: h})
	})
	return h, err
}

// UpdateHandler applies f to owner's handler (of integrationID, unless it
// is uuid.Nil).
func (s *Store) UpdateHandler(ctx context.Context, owner, actor string, integrationID, id uuid.UUID, f HandlerFields) (Handler, error) {
	var h Handler
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := scanHandler(tx.QueryRow(ctx, `SELECT `+handlerColumns+` FROM handlers h JOIN integrations i ON i.id = h.integration_id
			WHERE h.id = $1 AND i.owner_id = $2 AND ($3::uuid IS NULL OR h.integration_id = $3) FOR UPDATE OF h`,
			id, owner, nilUUID(integrationID)))
		if err != nil {
			return err
		}
		name, args := before.Name, before.DefaultArgs
		if f.Name != nil {
			name = *f.Name
		}
		if f.DefaultArgs != nil {
			args = argsOrEmpty(f.DefaultArgs)
		}
		h, err = scanHandler(tx.QueryRow(ctx, `UPDATE handlers AS h SET name = $2, default_args = $3, updated_at = now()
			WHERE h.id = $1 RETURNING `+handlerColumns, id, name, args))
		if isUniqueViolation(err, "") {
			return handlerConflict(name)
		}
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: h.IntegrationID, Owner: owner, Actor: actor, Action: AuditUpdate,
			Resource: resourceHandler, ResourceID: h.ID.String(), Before: before, After: h})
	})
	return h, err
}

// DeleteHandler removes owner's handler (of integrationID, unless it is
// uuid.Nil).
func (s *Store) DeleteHandler(ctx context.Context, owner, actor string, integrationID, id uuid.UUID) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := scanHandler(tx.QueryRow(ctx, `DELETE FROM handlers AS h USING integrations i
			WHERE i.id = h.integration_id AND h.id = $1 AND i.owner_id = $2 AND ($3::uuid IS NULL OR h.integration_id = $3)
			RETURNING `+handlerColumns, id, owner, nilUUID(integrationID)))
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: before.IntegrationID, Owner: owner, Actor: actor, Action: AuditDelete,
			Resource: resourceHandler, ResourceID: before.ID.String(), Before: before})
	})
}

// HandlerSpec is a handler that sync-handlers derived from an OpenAPI
// operation: its name and default arguments ({method, url, body}).
type HandlerSpec struct {
	Name        string
	DefaultArgs json.RawMessage
}

// SyncedHandler is one handler a sync created or updated, in spec order.
type SyncedHandler struct {
	Handler Handler
	Created bool
}

// SyncHandlers creates or updates (by name) one handler per spec in one
// transaction: all of them or, on any error, none. Handlers the specs do
// not name are left alone.
func (s *Store) SyncHandlers(ctx context.Context, owner, actor string, integrationID uuid.UUID, specs []HandlerSpec) ([]SyncedHandler, error) {
	var out []SyncedHandler
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		if err := ownedIntegration(ctx, tx, owner, integrationID); err != nil {
			return err
		}
		for _, spec := range specs {
			var before Handler
			var existed bool
			cur, err := scanHandler(tx.QueryRow(ctx, `SELECT `+handlerColumns+` FROM handlers h
				WHERE h.integration_id = $1 AND h.name = $2 FOR UPDATE`, integrationID, spec.Name))
			switch {
			case err == nil:
				before, existed = cur, true
			case !errors.Is(err, ErrNotFound):
				return err
			}
			var h Handler
			if existed {
				h, err = scanHandler(tx.QueryRow(ctx, `UPDATE handlers AS h SET default_args = $2, updated_at = now()
					WHERE h.id = $1 RETURNING `+handlerColumns, before.ID, argsOrEmpty(spec.DefaultArgs)))
			} else {
				// clock_timestamp keeps the spec's order in created_at, which
				// orders the list.
				h, err = scanHandler(tx.QueryRow(ctx, `INSERT INTO handlers AS h (id, integration_id, name, default_args, created_at, updated_at)
					VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp()) RETURNING `+handlerColumns,
					uuid.New(), integrationID, spec.Name, argsOrEmpty(spec.DefaultArgs)))
			}
			if err != nil {
				return err
			}
			a := Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: auditSync,
				Resource: resourceHandler, ResourceID: h.ID.String(), After: h}
			if existed {
				a.Before = before
			}
			if err := recordAudit(ctx, tx, a); err != nil {
				return err
			}
			out = append(out, SyncedHandler{Handler: h, Created: !existed})
		}
		// Within the quota once all are written, or none is.
		return checkQuota(ctx, tx, "handlers", integrationID, 0, MaxHandlersPerIntegration, "", "handlers")
	})
	return out, err
}

// PlaceholderSecrets are the secrets /{slug}/setup creates empty, so that
// the admin UI lists what is left to fill in. An empty value does not count
// as configured.
var PlaceholderSecrets = []string{"VA_AUTH_TOKEN", "ELEVENLABS_WEBHOOK_SECRET", "LLM_API_KEY"}

// SetupResult is what SetupIntegration did.
type SetupResult struct {
	// Created lists what was added: "config:<key>" and "secret:<KEY>".
	Created []string
	Status  string
}

// SetupIntegration stores the default of every known config key the
// integration has not set, creates the placeholder secrets it lacks (empty)
// and refreshes its status, in one transaction. A second run creates
// nothing.
func (s *Store) SetupIntegration(ctx context.Context, actor string, integrationID uuid.UUID) (SetupResult, error) {
	var res SetupResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = SetupResult{Created: []string{}}
		var owner string
		if err := tx.QueryRow(ctx, `SELECT owner_id FROM integrations WHERE id = $1 FOR NO KEY UPDATE`,
			integrationID).Scan(&owner); err != nil {
			return notFound(err)
		}
		defaults := config.Defaults()
		for _, key := range config.KnownKeys {
			value, err := json.Marshal(defaults[key])
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO integration_config (integration_id, key, value) VALUES ($1, $2, $3)
				ON CONFLICT (integration_id, key) DO NOTHING`, integrationID, key, value)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				res.Created = append(res.Created, "config:"+key)
			}
		}
		for _, key := range PlaceholderSecrets {
			// A credential of that key counts: SecretValue reads either.
			tag, err := tx.Exec(ctx, `INSERT INTO secrets (id, integration_id, kind, key, value_enc, value_preview)
				SELECT $1, $2, $3, $4, $5, '' WHERE NOT EXISTS (SELECT 1 FROM secrets WHERE integration_id = $2 AND key = $4)
				ON CONFLICT (integration_id, kind, key) DO NOTHING`,
				uuid.New(), integrationID, KindSecret, key, s.sealer.Seal(nil, secretContext(integrationID, KindSecret, key)))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				res.Created = append(res.Created, "secret:"+key)
			}
		}
		var err error
		if res.Status, err = refreshStatus(ctx, tx, integrationID); err != nil {
			return err
		}
		if len(res.Created) == 0 {
			return nil
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: auditSetup,
			Resource: ResourceIntegration, ResourceID: integrationID.String(), After: map[string]any{"created": slices.Clone(res.Created)}})
	})
	return res, err
}
