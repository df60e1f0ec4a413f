package service_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestShutdownDuringAClaimsCommit: SIGTERM lands while a claim's COMMIT
// is on its way. The claim completes and its call is dialled once and
// recorded, not left "dialling" for the watchdog to release as dial_lost.
func TestShutdownDuringAClaimsCommit(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	va := servicetest.NewFakeVA(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-a")
	integ := admin.CreateIntegration("Shutdown", va, map[string]any{"concurrency_limit": 1})

	const phone = "+380501112201"
	committing, stopping := make(chan struct{}), make(chan struct{})
	var once sync.Once
	in.Store.SetCommitFault(func(ctx context.Context, path string, tx pgx.Tx) error {
		first := false
		if path == store.PathClaim { // the dispatcher's claim
			// The claim that took the call (it sees its own writes).
			var took bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM calls WHERE phone_number = $1 AND status = 'initiated')`,
				phone).Scan(&took); err != nil {
				return err
			}
			if took {
				once.Do(func() { first = true })
			}
		}
		if !first {
			return tx.Commit(ctx)
		}
		close(committing)
		<-stopping
		// The stop's cancellation, if the claim runs under it, reaches the
		// COMMIT now: the server commits, the answer is lost.
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
		if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
			return err
		}
		return ctx.Err()
	})
	id := originateOn(t, in, integ, map[string]any{"phone_number": phone})
	select {
	case <-committing:
	case <-time.After(15 * time.Second):
		t.Fatal("the call was never claimed")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- in.Shutdown(ctx)
	}()
	select {
	case <-in.Workers.Dispatcher.ClaimingStopped():
	case <-time.After(15 * time.Second):
		t.Fatal("the shutdown never stopped claiming")
	}
	close(stopping)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := va.CountFor(id.String()); n != 1 {
		var st, ds string
		_ = env.Store.Pool().QueryRow(t.Context(), `SELECT status, dial_state FROM calls WHERE id = $1`, id).Scan(&st, &ds)
		t.Fatalf("the claimed call was dialled %d times, want once (call %s, dial %s)", n, st, ds)
	}
	var dialState string
	if err := env.Store.Pool().QueryRow(t.Context(), `SELECT dial_state FROM calls WHERE id = $1`, id).Scan(&dialState); err != nil {
		t.Fatal(err)
	}
	if dialState != "accepted" {
		t.Errorf("the call's dial is %s after shutdown, want accepted (recorded)", dialState)
	}
}
