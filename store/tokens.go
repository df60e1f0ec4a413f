package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/google/uuid"
)

// AccessToken is an admin-API token; only its hash is stored.
type AccessToken struct {
	ID         uuid.UUID  `json:"id"`
	OwnerID    string     `json:"ownerId"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
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

// CreateToken makes a new token for owner and returns it in plain text once.
func (s *Store) CreateToken(ctx context.Context, owner, name string) (AccessToken, string, error) {
	plain := randomToken("cq_", 32)
	t := AccessToken{ID: uuid.New(), OwnerID: owner, Name: name}
	err := s.pool.QueryRow(ctx, `INSERT INTO access_tokens (id, owner_id, name, token_hash) VALUES ($1, $2, $3, $4) RETURNING created_at`,
		t.ID, owner, name, hashToken(plain)).Scan(&t.CreatedAt)
	return t, plain, err
}

// Authenticate returns the owner of a live token and records its use.
func (s *Store) Authenticate(ctx context.Context, token string) (string, error) {
	var owner string
	err := s.pool.QueryRow(ctx, `UPDATE access_tokens SET last_used_at = now()
		WHERE token_hash = $1 AND revoked_at IS NULL RETURNING owner_id`, hashToken(token)).Scan(&owner)
	return owner, notFound(err)
}

// ListTokens lists an owner's tokens, newest first.
func (s *Store) ListTokens(ctx context.Context, owner string) ([]AccessToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, owner_id, name, created_at, last_used_at, revoked_at
		FROM access_tokens WHERE owner_id = $1 OR $1 = '' ORDER BY created_at DESC`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AccessToken
	for rows.Next() {
		var t AccessToken
		if err := rows.Scan(&t.ID, &t.OwnerID, &t.Name, &t.CreatedAt, &t.LastUsedAt, &t.RevokedAt); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken revokes one of owner's tokens ("" owner: any).
func (s *Store) RevokeToken(ctx context.Context, owner string, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked_at = now()
		WHERE id = $1 AND (owner_id = $2 OR $2 = '') AND revoked_at IS NULL`, id, owner)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}
