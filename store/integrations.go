package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// Integration statuses (seed 003 lifecycle).
const (
	StatusNotConfigured = "not_configured"
	StatusActive        = "active"
	StatusPaused        = "paused"
	StatusHasErrors     = "has_errors"
	StatusFailed        = "failed"
)

// Integration is a tenant's voice integration.
type Integration struct {
	ID                  uuid.UUID `json:"id"`
	Name                string    `json:"name"`
	Slug                string    `json:"slug"`
	OwnerID             string    `json:"ownerId"`
	Status              string    `json:"status"`
	WebhookToken        string    `json:"webhookToken"`
	AgentPrompt         *string   `json:"agentPrompt"`
	ElevenLabsAgentID   *string   `json:"elevenLabsAgentId"`
	SaasAssistantName   *string   `json:"saasAssistantName"`
	PhoneNumber         *string   `json:"phoneNumber"`
	VoiceAssistantSipID *string   `json:"voiceAssistantSipId"`
	CreatedAt           time.Time `json:"createdAt"`
	UpdatedAt           time.Time `json:"updatedAt"`
}

// IntegrationFields are the writable fields; nil means "not given".
type IntegrationFields struct {
	Name                *string
	Slug                *string
	Status              *string
	AgentPrompt         *string
	ElevenLabsAgentID   *string
	SaasAssistantName   *string
	PhoneNumber         *string
	VoiceAssistantSipID *string
}

const integrationColumns = `id, name, slug, owner_id, status, webhook_token_enc, agent_prompt, elevenlabs_agent_id,
	saas_assistant_name, phone_number, voice_assistant_sip_id, created_at, updated_at`

// scanSealedIntegration reads a row of integrationColumns, leaving the
// webhook token sealed.
func scanSealedIntegration(row pgx.Row) (in Integration, tokenEnc []byte, err error) {
	err = row.Scan(&in.ID, &in.Name, &in.Slug, &in.OwnerID, &in.Status, &tokenEnc, &in.AgentPrompt,
		&in.ElevenLabsAgentID, &in.SaasAssistantName, &in.PhoneNumber, &in.VoiceAssistantSipID, &in.CreatedAt, &in.UpdatedAt)
	return in, tokenEnc, notFound(err)
}

func (s *Store) scanIntegration(row pgx.Row) (Integration, error) {
	in, tokenEnc, err := scanSealedIntegration(row)
	if err != nil {
		return in, err
	}
	token, err := s.sealer.Open(tokenEnc, webhookTokenContext(in.ID))
	if err != nil {
		return in, fmt.Errorf("integration %s webhook token: %w", in.ID, err)
	}
	in.WebhookToken = string(token)
	return in, nil
}

func webhookTokenContext(id uuid.UUID) string { return "webhook-token:" + id.String() }

// integrationAudit is what the audit log keeps of an integration: what the
// API shows, less the webhook token (a credential) and the timestamps (the
// entry has its own).
type integrationAudit struct {
	ID                  uuid.UUID `json:"id"`
	Name                string    `json:"name"`
	Slug                string    `json:"slug"`
	Status              string    `json:"status"`
	AgentPrompt         *string   `json:"agentPrompt"`
	ElevenLabsAgentID   *string   `json:"elevenLabsAgentId"`
	SaasAssistantName   *string   `json:"saasAssistantName"`
	PhoneNumber         *string   `json:"phoneNumber"`
	VoiceAssistantSipID *string   `json:"voiceAssistantSipId"`
}

func (in Integration) audit() integrationAudit {
	return integrationAudit{ID: in.ID, Name: in.Name, Slug: in.Slug, Status: in.Status, AgentPrompt: in.AgentPrompt,
		ElevenLabsAgentID: in.ElevenLabsAgentID, SaasAssistantName: in.SaasAssistantName, PhoneNumber: in.PhoneNumber,
		VoiceAssistantSipID: in.VoiceAssistantSipID}
}

// changedFields returns the members of two JSON objects that differ, as
// the audit log's before and after of an update.
func changedFields(before, after any) (b, a map[string]json.RawMessage, err error) {
	decode := func(v any) (map[string]json.RawMessage, error) {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		err = json.Unmarshal(raw, &m)
		return m, err
	}
	if b, err = decode(before); err != nil {
		return nil, nil, err
	}
	if a, err = decode(after); err != nil {
		return nil, nil, err
	}
	for k, v := range b {
		if w, ok := a[k]; ok && bytes.Equal(v, w) {
			delete(a, k)
			delete(b, k)
		}
	}
	return b, a, nil
}

// lockIntegration locks an integration's row for a change to it or to its
// config or secrets, and returns its owner and status. Changes to one
// integration serialise on it, so the "before" of each audit entry is
// what the change really replaced.
func lockIntegration(ctx context.Context, tx pgx.Tx, id uuid.UUID) (owner, status string, err error) {
	err = tx.QueryRow(ctx, `SELECT owner_id, status FROM integrations WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&owner, &status)
	return owner, status, notFound(err)
}

// refreshStatusAudited is refreshStatus within actor's change to
// integration id: the move between not_configured and active that the
// change causes is recorded too. prev is the status before the change.
func refreshStatusAudited(ctx context.Context, tx pgx.Tx, actor string, id uuid.UUID, owner, prev string) (string, error) {
	next, err := refreshStatus(ctx, tx, id)
	if err != nil || next == prev {
		return next, err
	}
	return next, recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: owner, Actor: actor, Action: AuditUpdate,
		Resource: ResourceIntegration, ResourceID: id.String(),
		Before: map[string]string{"status": prev}, After: map[string]string{"status": next}})
}

// CreateIntegration creates an integration for owner. A slug derived from
// the name gets a random suffix when taken or reserved (see slug.go); an
// explicit slug that is taken is a ConflictError.
func (s *Store) CreateIntegration(ctx context.Context, owner, actor string, f IntegrationFields) (Integration, error) {
	if owner == "" {
		return Integration{}, ErrNoOwner
	}
	id := uuid.New()
	tokenEnc := s.sealer.Seal([]byte(randomToken("wh_", 24)), webhookTokenContext(id))
	explicit := f.Slug != nil
	base := Slugify(deref(f.Name))
	if explicit {
		base = *f.Slug
	}
	slug := base
	if !explicit && (slug == "" || ReservedSlug(slug)) {
		slug = withRandomSuffix(base)
	}
	for attempt := 1; ; attempt++ {
		// One transaction per attempt: a slug clash aborts it.
		var in Integration
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			if retired, err := slugRetiredByOther(ctx, tx, slug, owner); err != nil || retired {
				return cmp.Or(err, errSlugTaken)
			}
			var err error
			in, err = s.scanIntegration(tx.QueryRow(ctx, `INSERT INTO integrations (id, name, slug, owner_id, webhook_token_enc,
				agent_prompt, elevenlabs_agent_id, saas_assistant_name, phone_number, voice_assistant_sip_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING `+integrationColumns,
				id, deref(f.Name), slug, owner, tokenEnc,
				f.AgentPrompt, f.ElevenLabsAgentID, f.SaasAssistantName, f.PhoneNumber, f.VoiceAssistantSipID))
			if isUniqueViolation(err, "integrations_slug_key") {
				return errSlugTaken
			}
			if err != nil {
				return err
			}
			return recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: owner, Actor: actor, Action: AuditCreate,
				Resource: ResourceIntegration, ResourceID: id.String(), After: in.audit()})
		})
		if errors.Is(err, errSlugTaken) {
			if explicit || attempt >= 10 {
				return in, &ConflictError{Field: "slug", Message: fmt.Sprintf("slug %q is taken", slug)}
			}
			slug = withRandomSuffix(base)
			continue
		}
		return in, err
	}
}

// errSlugTaken is a slug in use, or kept by another owner.
var errSlugTaken = errors.New("slug taken")

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// GetIntegration returns owner's integration. An empty owner owns
// nothing: code that is no request's reads with IntegrationByID.
func (s *Store) GetIntegration(ctx context.Context, owner string, id uuid.UUID) (Integration, error) {
	return s.scanIntegration(s.pool.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations
		WHERE id = $1 AND owner_id = $2`, id, owner))
}

// IntegrationByID returns any integration, whoever owns it: for the
// service's own components and tools, never for a request.
func (s *Store) IntegrationByID(ctx context.Context, id uuid.UUID) (Integration, error) {
	return s.scanIntegration(s.pool.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE id = $1`, id))
}

// IntegrationBySlug returns the integration with that URL key.
func (s *Store) IntegrationBySlug(ctx context.Context, slug string) (Integration, error) {
	return s.scanIntegration(s.pool.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE slug = $1`, slug))
}

// ListOptions page and order a list.
type ListOptions struct {
	Search string
	Order  string // name, -name, createdAt, -createdAt
	Limit  int
	Offset int
}

var integrationOrder = map[string]string{
	"name": "lower(name), id", "-name": "lower(name) DESC, id DESC",
	"createdAt": "created_at, id", "-createdAt": "created_at DESC, id DESC", "": "created_at, id",
}

// ListIntegrations returns one page of owner's integrations and the total.
func (s *Store) ListIntegrations(ctx context.Context, owner string, opt ListOptions) ([]Integration, int, error) {
	order, ok := integrationOrder[opt.Order]
	if !ok {
		return nil, 0, fmt.Errorf("unknown order %q", opt.Order)
	}
	pattern := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(opt.Search) + "%"
	rows, err := s.pool.Query(ctx, `SELECT `+integrationColumns+`, count(*) OVER () FROM integrations
		WHERE owner_id = $1 AND (name ILIKE $2 OR slug ILIKE $2)
		ORDER BY `+order+` LIMIT $3 OFFSET $4`, owner, pattern, opt.Limit, opt.Offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Integration
	total := 0
	for rows.Next() {
		in, err := s.scanIntegration(scanFunc(func(dest ...any) error { return rows.Scan(append(dest, &total)...) }))
		if err != nil {
			return nil, 0, err
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	if len(out) == 0 && opt.Offset > 0 {
		err = s.pool.QueryRow(ctx, `SELECT count(*) FROM integrations WHERE owner_id = $1 AND (name ILIKE $2 OR slug ILIKE $2)`,
			owner, pattern).Scan(&total)
	}
	return out, total, err
}

type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }

// UpdateIntegration applies f to owner's integration. replace clears the
// optional fields f leaves nil (PUT); otherwise they are kept (PATCH).
func (s *Store) UpdateIntegration(ctx context.Context, owner, actor string, id uuid.UUID, f IntegrationFields, replace bool) (Integration, error) {
	var out Integration
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		cur, err := s.scanIntegration(tx.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations
			WHERE id = $1 AND owner_id = $2 FOR UPDATE`, id, owner))
		if err != nil {
			return err
		}
		pick := func(next *string, cur *string) *string {
			if next != nil {
				if *next == "" {
					return nil
				}
				return next
			}
			if replace {
				return nil
			}
			return cur
		}
		name := cur.Name
		if f.Name != nil {
			name = *f.Name
		}
		slug := cur.Slug
		if f.Slug != nil && *f.Slug != cur.Slug {
			slug = *f.Slug
			taken, err := slugRetiredByOther(ctx, tx, slug, cur.OwnerID)
			if err != nil {
				return err
			}
			if taken {
				return &ConflictError{Field: "slug", Message: fmt.Sprintf("slug %q is taken", slug)}
			}
			if err := retireSlug(ctx, tx, cur.Slug, cur.OwnerID); err != nil {
				return err
			}
		}
		status := cur.Status
		if f.Status != nil {
			switch *f.Status {
			case StatusPaused:
				status = StatusPaused
			case StatusActive:
				if status == StatusPaused || status == StatusNotConfigured {
					status = StatusNotConfigured // resolved by refreshStatus below
				}
			}
		}
		out, err = s.scanIntegration(tx.QueryRow(ctx, `UPDATE integrations SET name = $3, slug = $4, status = $5,
			agent_prompt = $6, elevenlabs_agent_id = $7, saas_assistant_name = $8, phone_number = $9,
			voice_assistant_sip_id = $10, updated_at = now()
			WHERE id = $1 AND owner_id = $2 RETURNING `+integrationColumns,
			id, owner, name, slug, status, pick(f.AgentPrompt, cur.AgentPrompt), pick(f.ElevenLabsAgentID, cur.ElevenLabsAgentID),
			pick(f.SaasAssistantName, cur.SaasAssistantName), pick(f.PhoneNumber, cur.PhoneNumber),
			pick(f.VoiceAssistantSipID, cur.VoiceAssistantSipID)))
		if isUniqueViolation(err, "integrations_slug_key") {
			return &ConflictError{Field: "slug", Message: fmt.Sprintf("slug %q is taken", slug)}
		}
		if err != nil {
			return err
		}
		if status, err = refreshStatus(ctx, tx, id); err != nil {
			return err
		}
		out.Status = status
		before, after, err := changedFields(cur.audit(), out.audit())
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: cur.OwnerID, Actor: actor, Action: AuditUpdate,
			Resource: ResourceIntegration, ResourceID: id.String(), Before: before, After: after})
	})
	return out, err
}

// DeleteIntegration removes owner's integration with its handlers, config,
// secrets and calls. Its audit entries stay, the deletion's own included:
// the log is append-only, and the owner reads it by integration id after.
func (s *Store) DeleteIntegration(ctx context.Context, owner, actor string, id uuid.UUID) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// The token stays sealed: an integration whose token no longer
		// decrypts can still be deleted.
		in, _, err := scanSealedIntegration(tx.QueryRow(ctx, `DELETE FROM integrations
			WHERE id = $1 AND owner_id = $2 RETURNING `+integrationColumns, id, owner))
		if err != nil {
			return err
		}
		if err := retireSlug(ctx, tx, in.Slug, in.OwnerID); err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: in.OwnerID, Actor: actor, Action: AuditDelete,
			Resource: ResourceIntegration, ResourceID: id.String(), Before: in.audit()})
	})
}

// RotateWebhookToken gives owner's integration a new webhook token. The
// audit entry records that it happened, never the token.
func (s *Store) RotateWebhookToken(ctx context.Context, owner, actor string, id uuid.UUID) (Integration, error) {
	var in Integration
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		in, err = s.scanIntegration(tx.QueryRow(ctx, `UPDATE integrations SET webhook_token_enc = $3, updated_at = now()
			WHERE id = $1 AND owner_id = $2 RETURNING `+integrationColumns,
			id, owner, s.sealer.Seal([]byte(randomToken("wh_", 24)), webhookTokenContext(id))))
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: in.OwnerID, Actor: actor, Action: AuditRotate,
			Resource: ResourceWebhookToken, ResourceID: id.String()})
	})
	return in, err
}

// SetIntegrationHealth moves an integration between active, has_errors and
// failed; paused and not_configured integrations keep their status.
func (s *Store) SetIntegrationHealth(ctx context.Context, id uuid.UUID, status string) error {
	_, err := s.pool.Exec(ctx, `UPDATE integrations SET status = $2, updated_at = now()
		WHERE id = $1 AND status IN ('active', 'has_errors', 'failed') AND status <> $2`, id, status)
	return err
}

// TokenMatches compares a presented webhook token in constant time.
func TokenMatches(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// refreshStatus moves an integration between not_configured and active as
// its dialler configuration becomes complete or incomplete, and returns the
// resulting status. Paused, has_errors and failed are left alone.
func refreshStatus(ctx context.Context, tx pgx.Tx, id uuid.UUID) (string, error) {
	var status string
	if err := tx.QueryRow(ctx, `SELECT status FROM integrations WHERE id = $1`, id).Scan(&status); err != nil {
		return "", notFound(err)
	}
	if status != StatusNotConfigured && status != StatusActive {
		return status, nil
	}
	cfg, err := loadConfig(ctx, tx, id)
	if err != nil {
		return "", err
	}
	voice := config.Decode(cfg).Voice
	complete := voice.Complete() && voice.SecretKey() == "" // the simulator needs no secret
	if voice.Complete() && voice.SecretKey() != "" {
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM secrets WHERE integration_id = $1 AND key = $2 AND value_preview <> '')`,
			id, voice.SecretKey()).Scan(&complete)
		if err != nil {
			return "", err
		}
	}
	next := StatusNotConfigured
	if complete {
		next = StatusActive
	}
	if next != status {
		if _, err := tx.Exec(ctx, `UPDATE integrations SET status = $2, updated_at = now() WHERE id = $1`, id, next); err != nil {
			return "", err
		}
	}
	return next, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func loadConfig(ctx context.Context, q querier, id uuid.UUID) (map[string]json.RawMessage, error) {
	rows, err := q.Query(ctx, configSQL, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		if err := scanConfig(rows, out); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// queueConfig queues the read of an integration's config keys into out.
func queueConfig(p *pipeline, id uuid.UUID, out map[string]json.RawMessage) {
	p.query("load config", func(rows pgx.Rows) error { return scanConfig(rows, out) }, configSQL, id)
}

const configSQL = `SELECT key, value FROM integration_config WHERE integration_id = $1`

func scanConfig(rows pgx.Rows, into map[string]json.RawMessage) error {
	var k string
	var v []byte
	if err := rows.Scan(&k, &v); err != nil {
		return err
	}
	into[k] = v
	return nil
}

// Config returns an integration's decoded configuration.
func (s *Store) Config(ctx context.Context, id uuid.UUID) (config.Integration, error) {
	raw, err := loadConfig(ctx, s.pool, id)
	if err != nil {
		return config.Integration{}, err
	}
	return config.Decode(raw), nil
}

// PutConfig stores a validated config value and refreshes the integration's
// status. value must already be normalised (config.Normalize).
func (s *Store) PutConfig(ctx context.Context, actor string, id uuid.UUID, key string, value json.RawMessage) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		owner, status, err := lockIntegration(ctx, tx, id)
		if err != nil {
			return err
		}
		var before []byte
		err = tx.QueryRow(ctx, `SELECT value FROM integration_config WHERE integration_id = $1 AND key = $2`, id, key).Scan(&before)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO integration_config (integration_id, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (integration_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`, id, key, value); err != nil {
			return err
		}
		// Before is null while the key had its default.
		if err := recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: owner, Actor: actor, Action: AuditUpdate,
			Resource: ResourceConfig, ResourceID: key, Before: json.RawMessage(before), After: value}); err != nil {
			return err
		}
		if _, err = refreshStatusAudited(ctx, tx, actor, id, owner, status); err != nil {
			return err
		}
		return s.windowInputChanged(ctx, tx, id, key)
	})
}

// DeleteConfig restores a key's default. Deleting a key that has its
// default already changes nothing and records nothing.
func (s *Store) DeleteConfig(ctx context.Context, actor string, id uuid.UUID, key string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		owner, status, err := lockIntegration(ctx, tx, id)
		if err != nil {
			return err
		}
		var before []byte
		err = tx.QueryRow(ctx, `DELETE FROM integration_config WHERE integration_id = $1 AND key = $2 RETURNING value`, id, key).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := recordAudit(ctx, tx, Audit{IntegrationID: id, Owner: owner, Actor: actor, Action: AuditDelete,
			Resource: ResourceConfig, ResourceID: key, Before: json.RawMessage(before)}); err != nil {
			return err
		}
		if _, err = refreshStatusAudited(ctx, tx, actor, id, owner, status); err != nil {
			return err
		}
		return s.windowInputChanged(ctx, tx, id, key)
	})
}

// ErrInvalidStatus is returned for a status PATCH other than paused/active.
var ErrInvalidStatus = errors.New(`status can only be set to "paused" or "active"`)
