package store_test

import (
	"testing"
	"time"
)

// TestWatchdogHeartbeat: releases wait only after a gap in every replica's
// heartbeats, for the grace, and that grace holds for any caller — also
// one whose first heartbeat comes after the gap.
func TestWatchdogHeartbeat(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	const gap, grace = 10 * time.Second, time.Minute
	beat := func() time.Duration {
		t.Helper()
		wait, err := s.WatchdogHeartbeat(ctx, gap, grace)
		if err != nil {
			t.Fatal(err)
		}
		return wait
	}
	if w := beat(); w != 0 {
		t.Fatalf("the first heartbeat ever waits %s, want 0", w)
	}
	if w := beat(); w != 0 {
		t.Fatalf("a heartbeat right after another waits %s, want 0", w)
	}
	// Nobody reached the database for 30 s.
	if _, err := s.Pool().Exec(ctx, `UPDATE watchdog_heartbeat SET seen_at = seen_at - interval '30 seconds'`); err != nil {
		t.Fatal(err)
	}
	if w := beat(); w < grace-5*time.Second || w > grace {
		t.Fatalf("the heartbeat after a 30 s gap waits %s, want about %s", w, grace)
	}
	// Another replica, or this one a second later: the grace is shared and
	// runs on; it is not restarted by heartbeats within the gap.
	first := beat()
	if first <= 0 || first > grace {
		t.Fatalf("the next heartbeat waits %s, want the rest of the grace", first)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE watchdog_heartbeat SET grace_until = clock_timestamp() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if w := beat(); w != 0 {
		t.Fatalf("a heartbeat after the grace waits %s, want 0", w)
	}
}
