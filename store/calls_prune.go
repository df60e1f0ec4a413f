package store

import (
	"context"
	"time"
)

// ContactDialsKept is how long a dial counts in contact_dials: the longest
// contact cap window (config.ContactCapDaysMax, 365 days) and a day more.
const ContactDialsKept = 366 * 24 * time.Hour

// PruneKeys deletes expired processed keys, parked events that waited in
// vain, and dials older than any contact cap counts, by the database's
// clock.
func (s *Store) PruneKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_keys WHERE expires_at < `+dbNow(1), s.dbClock())
	if err != nil {
		return 0, err
	}
	parked, err := s.pool.Exec(ctx, `DELETE FROM parked_events WHERE parked_at < `+dbNow(1)+` - $2::interval`, s.dbClock(), ParkedTTL)
	if err != nil {
		return tag.RowsAffected(), err
	}
	dials, err := s.pool.Exec(ctx, `DELETE FROM contact_dials WHERE dialled_at < `+dbNow(1)+` - $2::interval`, s.dbClock(), ContactDialsKept)
	return tag.RowsAffected() + parked.RowsAffected() + dials.RowsAffected(), err
}
