package store

import (
	"context"
	"time"
)

// WatchdogHeartbeat records that a watchdog reached the database and
// returns how long every watchdog must still release nothing. When no
// watchdog of any replica had reached it for longer than gap — the
// database was down, or every replica was — dial answers, call events and
// post-calls were held meanwhile (in a process's memory or in JetStream);
// a grace of its own starts then, shared by every replica, also by one
// that starts after the outage and so never saw it. The database's own
// wall clock decides both, never a test clock: held work drains in real
// time. The first heartbeat ever starts no grace.
func (s *Store) WatchdogHeartbeat(ctx context.Context, gap, grace time.Duration) (time.Duration, error) {
	var wait float64
	err := s.pool.QueryRow(ctx, `INSERT INTO watchdog_heartbeat AS h (id, seen_at, grace_until)
			VALUES (true, clock_timestamp(), clock_timestamp())
		ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at,
			grace_until = CASE WHEN h.seen_at < EXCLUDED.seen_at - make_interval(secs => $1)
				THEN EXCLUDED.seen_at + make_interval(secs => $2) ELSE h.grace_until END
		RETURNING extract(epoch FROM greatest(grace_until - clock_timestamp(), interval '0'))::float8`,
		gap.Seconds(), grace.Seconds()).Scan(&wait)
	return time.Duration(wait * float64(time.Second)), err
}
