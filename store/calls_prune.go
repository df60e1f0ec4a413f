package store

import "context"

// PruneKeys deletes expired processed keys and parked events that waited
// in vain, by the database's clock.
func (s *Store) PruneKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_keys WHERE expires_at < `+dbNow(1), s.dbClock())
	if err != nil {
		return 0, err
	}
	parked, err := s.pool.Exec(ctx, `DELETE FROM parked_events WHERE parked_at < `+dbNow(1)+` - $2::interval`, s.dbClock(), ParkedTTL)
	return tag.RowsAffected() + parked.RowsAffected(), err
}
