package store

import (
	"context"

	"github.com/google/uuid"
)

// OriginateRef is the call an integration's call-originate idempotency key
// (NewCall.IdempotencyKeys) was last taken by: ErrNotFound when no call was
// created under it yet. Its expiry is the caller's to judge (a duplicate
// in the stream's window is about this very key).
func (s *Store) OriginateRef(ctx context.Context, integrationID uuid.UUID, key string) (uuid.UUID, error) {
	var ref string
	err := s.pool.QueryRow(ctx, `SELECT ref FROM processed_keys WHERE scope = 'originate' AND key = $1`,
		integrationID.String()+":"+key).Scan(&ref)
	if err != nil {
		return uuid.Nil, notFound(err)
	}
	return uuid.Parse(ref)
}
