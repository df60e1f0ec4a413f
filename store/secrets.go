package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Secret kinds.
const (
	KindSecret     = "secret"
	KindCredential = "credential"
)

// Secret is a stored secret as the API shows it: never its value.
type Secret struct {
	ID           uuid.UUID `json:"id"`
	Key          string    `json:"key"`
	ValuePreview string    `json:"valuePreview"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

func secretContext(integrationID uuid.UUID, kind, key string) string {
	return "secret:" + integrationID.String() + ":" + kind + ":" + key
}

// ListSecrets lists an integration's secrets (or credentials) by key.
func (s *Store) ListSecrets(ctx context.Context, integrationID uuid.UUID, kind string) ([]Secret, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, key, value_preview, created_at, updated_at FROM secrets
		WHERE integration_id = $1 AND kind = $2 ORDER BY key`, integrationID, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Secret{}
	for rows.Next() {
		var sec Secret
		if err := rows.Scan(&sec.ID, &sec.Key, &sec.ValuePreview, &sec.CreatedAt, &sec.UpdatedAt); err != nil {
			return nil, err
		}
		out = append(out, sec)
	}
	return out, rows.Err()
}

// secretAudit is what the audit log keeps of a secret: its key and the
// preview the API shows, never the value.
type secretAudit struct {
	Key          string `json:"key"`
	ValuePreview string `json:"valuePreview"`
}

// PutSecret creates a secret, or with upsert replaces the value of an
// existing key. Without upsert an existing key is a ConflictError.
func (s *Store) PutSecret(ctx context.Context, actor string, integrationID uuid.UUID, kind, key, value string, upsert bool) (Secret, error) {
	var sec Secret
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		owner, status, err := lockIntegration(ctx, tx, integrationID)
		if err != nil {
			return err
		}
		// The integration's row lock keeps this answer true until commit.
		var before *secretAudit
		var prev secretAudit
		err = tx.QueryRow(ctx, `SELECT key, value_preview FROM secrets WHERE integration_id = $1 AND kind = $2 AND key = $3`,
			integrationID, kind, key).Scan(&prev.Key, &prev.ValuePreview)
		switch {
		case err == nil && !upsert:
			return &ConflictError{Field: "key", Message: fmt.Sprintf("%s %q exists", kind, key)}
		case err == nil:
			before = &prev
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		default:
			if err := checkQuota(ctx, tx, "secrets", integrationID, 1, MaxSecretsPerIntegration, "key", "secrets and credentials"); err != nil {
				return err
			}
		}
		conflict := `DO NOTHING`
		if upsert {
			conflict = `DO UPDATE SET value_enc = EXCLUDED.value_enc, value_preview = EXCLUDED.value_preview, updated_at = now()`
		}
		err = tx.QueryRow(ctx, `INSERT INTO secrets (id, integration_id, kind, key, value_enc, value_preview)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (integration_id, kind, key) `+conflict+`
			RETURNING id, key, value_preview, created_at, updated_at`,
			uuid.New(), integrationID, kind, key, s.sealer.Seal([]byte(value), secretContext(integrationID, kind, key)), Preview(value),
		).Scan(&sec.ID, &sec.Key, &sec.ValuePreview, &sec.CreatedAt, &sec.UpdatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return &ConflictError{Field: "key", Message: fmt.Sprintf("%s %q exists", kind, key)}
		}
		if err != nil {
			return err
		}
		action := AuditCreate
		if before != nil {
			action = AuditUpdate
		}
		if err := recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: action,
			Resource: kind, ResourceID: sec.ID.String(), Before: before,
			After: secretAudit{Key: sec.Key, ValuePreview: sec.ValuePreview}}); err != nil {
			return err
		}
		_, err = refreshStatusAudited(ctx, tx, actor, integrationID, owner, status)
		return err
	})
	return sec, err
}

// UpdateSecret replaces a secret's key and value.
func (s *Store) UpdateSecret(ctx context.Context, actor string, integrationID uuid.UUID, kind string, id uuid.UUID, key, value string) (Secret, error) {
	var sec Secret
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		owner, status, err := lockIntegration(ctx, tx, integrationID)
		if err != nil {
			return err
		}
		var before secretAudit
		err = tx.QueryRow(ctx, `SELECT key, value_preview FROM secrets WHERE id = $1 AND integration_id = $2 AND kind = $3`,
			id, integrationID, kind).Scan(&before.Key, &before.ValuePreview)
		if err != nil {
			return notFound(err)
		}
		err = tx.QueryRow(ctx, `UPDATE secrets SET key = $4, value_enc = $5, value_preview = $6, updated_at = now()
			WHERE id = $1 AND integration_id = $2 AND kind = $3 RETURNING id, key, value_preview, created_at, updated_at`,
			id, integrationID, kind, key, s.sealer.Seal([]byte(value), secretContext(integrationID, kind, key)), Preview(value),
		).Scan(&sec.ID, &sec.Key, &sec.ValuePreview, &sec.CreatedAt, &sec.UpdatedAt)
		if isUniqueViolation(err, "") {
			return &ConflictError{Field: "key", Message: fmt.Sprintf("%s %q exists", kind, key)}
		}
		if err != nil {
			return notFound(err)
		}
		if err := recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: AuditUpdate,
			Resource: kind, ResourceID: id.String(), Before: before,
			After: secretAudit{Key: sec.Key, ValuePreview: sec.ValuePreview}}); err != nil {
			return err
		}
		_, err = refreshStatusAudited(ctx, tx, actor, integrationID, owner, status)
		return err
	})
	return sec, err
}

// DeleteSecret removes a secret.
func (s *Store) DeleteSecret(ctx context.Context, actor string, integrationID uuid.UUID, kind string, id uuid.UUID) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		owner, status, err := lockIntegration(ctx, tx, integrationID)
		if err != nil {
			return err
		}
		var before secretAudit
		err = tx.QueryRow(ctx, `DELETE FROM secrets WHERE id = $1 AND integration_id = $2 AND kind = $3 RETURNING key, value_preview`,
			id, integrationID, kind).Scan(&before.Key, &before.ValuePreview)
		if err != nil {
			return notFound(err)
		}
		if err := recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: actor, Action: AuditDelete,
			Resource: kind, ResourceID: id.String(), Before: before}); err != nil {
			return err
		}
		_, err = refreshStatusAudited(ctx, tx, actor, integrationID, owner, status)
		return err
	})
}

// sealedSecret is a secret's or credential's value as stored.
type sealedSecret struct {
	kind, key string
	enc       []byte
}

// SecretValue decrypts the value of key, looking in secrets before
// credentials. An empty value counts as unset (setup creates empty
// placeholders), so an empty secret does not hide a credential of the same
// key. It returns ErrNotFound when neither holds a value.
func (s *Store) SecretValue(ctx context.Context, integrationID uuid.UUID, key string) (string, error) {
	rows, err := s.pool.Query(ctx, secretsSQL, integrationID, []string{key})
	if err != nil {
		return "", err
	}
	found, err := pgx.CollectRows(rows, scanSealed)
	if err != nil {
		return "", err
	}
	return s.openSecret(integrationID, key, found)
}

// queueSecrets queues the read of the sealed values of keys of an
// integration in p, into into.
func queueSecrets(p *pipeline, integrationID uuid.UUID, keys []string, into *[]sealedSecret) {
	p.query("read secrets", func(rows pgx.Rows) error {
		f, err := scanSealed(rows)
		*into = append(*into, f)
		return err
	}, secretsSQL, integrationID, keys)
}

func scanSealed(row pgx.CollectableRow) (sealedSecret, error) {
	var f sealedSecret
	err := row.Scan(&f.kind, &f.key, &f.enc)
	return f, err
}

// secretsSQL reads the values of keys ($2) of an integration ($1), secrets
// before credentials.
//
//nolint:gosec // a query, not a credential
const secretsSQL = `SELECT kind, key, value_enc FROM secrets WHERE integration_id = $1 AND key = ANY($2)
	ORDER BY kind = 'secret' DESC`

// openSecret decrypts the first value of key among found that is not
// empty (SecretValue).
func (s *Store) openSecret(integrationID uuid.UUID, key string, found []sealedSecret) (string, error) {
	for _, f := range found {
		if f.key != key {
			continue
		}
		plain, err := s.sealer.Open(f.enc, secretContext(integrationID, f.kind, key))
		if err != nil {
			return "", err
		}
		if len(plain) > 0 {
			return string(plain), nil
		}
	}
	return "", ErrNotFound
}

// DiallerSecret is the secret the claimed call's dialler authenticates
// with (voice.SecretKey()), as the claim read it: the dial needs no round
// trip of its own for it. ErrNotFound when it has none.
func (s *Store) DiallerSecret(c Claimed) (string, error) {
	return s.openSecret(c.Call.IntegrationID, c.Config.Voice.SecretKey(), c.sealed)
}
