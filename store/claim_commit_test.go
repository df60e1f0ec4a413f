package store_test

import (
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/store/storetest"
)

// TestClaimWithAmbiguousCommit: the connection is lost during a claim's
// COMMIT. When the server had committed, the claim returns the calls it
// took (to be dialled once, by this dispatcher); when it had not, it
// returns none and the calls stay queued, slots free. Either way the slots
// the database holds match what the dispatcher will dial.
func TestClaimWithAmbiguousCommit(t *testing.T) {
	t.Parallel()
	for _, committed := range []bool{true, false} {
		t.Run(map[bool]string{true: "committed", false: "not committed"}[committed], func(t *testing.T) {
			t.Parallel()
			s, _ := storetest.NewStore(t)
			in := activeIntegration(t, s, map[string]any{"concurrency_limit": 2})
			insert(t, s, t0, newCall(in.ID, t0), newCall(in.ID, t0), newCall(in.ID, t0))
			lost := 0
			s.SetCommitFault(func(ctx context.Context, path string, tx pgx.Tx) error {
				if path != "ClaimCalls" {
					return tx.Commit(ctx)
				}
				lost++
				if committed {
					if err := tx.Commit(ctx); err != nil {
						return err
					}
				} else {
					_ = tx.Rollback(ctx)
				}
				return io.ErrUnexpectedEOF // the answer never arrives
			})
			claimed, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if lost != 1 {
				t.Fatalf("commit called %d times", lost)
			}
			var initiated, queued int
			if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE status = 'initiated'),
					count(*) FILTER (WHERE status = 'queued') FROM calls WHERE integration_id = $1`, in.ID).Scan(&initiated, &queued); err != nil {
				t.Fatal(err)
			}
			want := 0
			if committed {
				want = 2
			}
			if len(claimed) != want || initiated != want || queued != 3-want {
				t.Fatalf("claimed %d, database: %d initiated, %d queued; want %d claimed and held", len(claimed), initiated, queued, want)
			}
			for _, c := range claimed {
				if c.Call.Attempt != 1 || c.Call.Status != "initiated" {
					t.Errorf("claimed call %+v", c.Call)
				}
			}
			// The next claim (answers arrive again) sees the true state.
			s.SetCommitFault(nil)
			more, err := s.ClaimCalls(t.Context(), in.ID, t0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(more) != 2-want {
				t.Errorf("the next claim took %d, want %d", len(more), 2-want)
			}
		})
	}
}
