package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AccessToken is an admin-API token; only its hash is stored.
type AccessToken struct {
	ID         uuid.UUID  `json:"id"`
	OwnerID    string     `json:"ownerId"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
}

func randomToken(prefix string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// tokenAudit is what the audit log keeps of a token: never the token or
// its hash.
type tokenAudit struct {
	Name      string     `json:"name"`
	RevokedAt *time.Time `json:"revokedAt"`
}

// ErrNoOwner refuses to create something without an owner: an empty
// owner must never stand for "every owner", nor be one.
var ErrNoOwner = errors.New("an owner is required")

// CreateToken makes a new token for owner and returns it in plain text once.
func (s *Store) CreateToken(ctx context.Context, owner, actor, name string) (AccessToken, string, error) {
	if owner == "" {
		return AccessToken{}, "", ErrNoOwner
	}
	plain := randomToken("cq_", 32)
	t := AccessToken{ID: uuid.New(), OwnerID: owner, Name: name}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO access_tokens (id, owner_id, name, token_hash) VALUES ($1, $2, $3, $4) RETURNING created_at`,
			t.ID, owner, name, hashToken(plain)).Scan(&t.CreatedAt)
		if err != nil {
			return err
		}
		return recordAudit(ctx, tx, Audit{Owner: owner, Actor: actor, Action: AuditCreate, Resource: ResourceToken,
			ResourceID: t.ID.String(), After: tokenAudit{Name: name}})
	})
	return t, plain, err
}

// Bearer is who presented a live admin token.
type Bearer struct {
	Owner   string
	TokenID uuid.UUID
}

// Authenticate returns the owner and id of a live token and records its
// use (to the minute).
func (s *Store) Authenticate(ctx context.Context, token string) (Bearer, error) {
	var b Bearer
	// last_used_at is written at most once a minute per token: a write on
	// every request made each admin call wait for a commit, serialised on
	// the token's row. A request that changes nothing commits nothing.
	err := s.pool.QueryRow(ctx, `WITH t AS (
			SELECT id, owner_id, last_used_at FROM access_tokens WHERE token_hash = $1 AND revoked_at IS NULL),
		touched AS (
			UPDATE access_tokens a SET last_used_at = now() FROM t
			WHERE a.id = t.id AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'))
		SELECT owner_id, id FROM t`, hashToken(token)).Scan(&b.Owner, &b.TokenID)
	return b, notFound(err)
}

// ListTokens lists an owner's tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, owner string) ([]AccessToken, error) {
	return collectTokens(s.pool.Query(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens WHERE owner_id = $1 ORDER BY created_at DESC`, owner))
}

// ListAllTokens lists every owner's tokens, newest first: for the command
// line, which administers the deployment, never for a request.
func (s *Store) ListAllTokens(ctx context.Context) ([]AccessToken, error) {
	return collectTokens(s.pool.Query(ctx, `SELECT `+accessTokenColumns+` FROM access_tokens ORDER BY created_at DESC`))
}

// accessTokenColumns are the columns an AccessToken is read from (never the hash).
const accessTokenColumns = `id, owner_id, name, created_at, last_used_at, revoked_at` //nolint:gosec // column names, no credential

func collectTokens(rows pgx.Rows, err error) ([]AccessToken, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (AccessToken, error) {
		var t AccessToken
		err := row.Scan(&t.ID, &t.OwnerID, &t.Name, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt)
		return t, err
	})
}

// RevokeToken revokes one of owner's live tokens. A token of another
// owner, or one revoked already, is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, owner, actor string, id uuid.UUID) error {
	return s.revokeToken(ctx, actor, id, `WHERE id = $1 AND owner_id = $2 AND revoked_at IS NULL`, owner)
}

// RevokeAnyToken revokes a live token whoever owns it: for the command
// line, never for a request.
func (s *Store) RevokeAnyToken(ctx context.Context, actor string, id uuid.UUID) error {
	return s.revokeToken(ctx, actor, id, `WHERE id = $1 AND revoked_at IS NULL`)
}

func (s *Store) revokeToken(ctx context.Context, actor string, id uuid.UUID, where string, args ...any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var tokenOwner string
		var t tokenAudit
		err := tx.QueryRow(ctx, `UPDATE access_tokens SET revoked_at = now() `+where+` RETURNING owner_id, name, revoked_at`,
			append([]any{id}, args...)...).Scan(&tokenOwner, &t.Name, &t.RevokedAt)
		if err != nil {
			return notFound(err)
		}
		return recordAudit(ctx, tx, Audit{Owner: tokenOwner, Actor: actor, Action: AuditRevoke, Resource: ResourceToken,
			ResourceID: id.String(), Before: tokenAudit{Name: t.Name}, After: t})
	})
}
