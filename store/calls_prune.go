package store

import (
	"context"
	"time"
)

// PruneKeys deletes expired processed keys and parked events that waited
// in vain.
func (s *Store) PruneKeys(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_keys WHERE expires_at < $1`, now)
	if err != nil {
		return 0, err
	}
	parked, err := s.pool.Exec(ctx, `DELETE FROM parked_events WHERE parked_at < $1`, now.Add(-ParkedTTL))
	return tag.RowsAffected() + parked.RowsAffected(), err
}
