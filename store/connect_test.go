package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callqueue/callqueue/internal/faultnet"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestQueryThroughABlackHoleFailsWithinBounds: the database host goes
// silent (packets dropped, no RST: a black-holing proxy). A statement on a
// connection already open fails at the client's query deadline, and a new
// connection at the connect timeout, instead of hanging for the kernel's
// retransmissions. A statement the server runs too long is stopped by
// statement_timeout.
func TestQueryThroughABlackHoleFailsWithinBounds(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewStore(t)
	proxy, pool := poolBehindProxy(t, dbURL)

	start := time.Now()
	_, err := pool.Exec(t.Context(), `SELECT pg_sleep(5)`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("a 5 s statement under a 1 s statement_timeout: %v, want 57014", err)
	}
	t.Logf("statement_timeout stopped a 5 s statement after %v", time.Since(start).Round(time.Millisecond))

	proxy.BlackHole()
	// Within its deadline, the test waits a bound of its own: the old pool
	// hung here for as long as the kernel kept retransmitting.
	within := func(what string, limit time.Duration, query func(context.Context) error) {
		t.Helper()
		done := make(chan error, 1)
		start := time.Now()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { done <- query(ctx) }()
		select {
		case err := <-done:
			took := time.Since(start)
			if err == nil {
				t.Fatalf("%s through a black hole succeeded", what)
			}
			if took > limit {
				t.Errorf("%s failed after %v, want within %v", what, took, limit)
			}
			t.Logf("%s through the black hole failed after %v: %v", what, took.Round(time.Millisecond), err)
			if !store.IsTransient(err) {
				t.Errorf("%s: %v is not transient: the consumers would not hold or give back its work", what, err)
			}
		case <-time.After(10 * time.Second):
			cancel()
			t.Fatalf("%s through a black hole still hangs after 10 s", what)
		}
	}
	// The open connection: the query deadline is statement_timeout plus a
	// half (1.5 s).
	within("a statement on an open connection", 3*time.Second, func(ctx context.Context) error {
		_, err := pool.Exec(ctx, `SELECT 1`)
		return err
	})
	// That connection is gone; a new one is accepted but never answers the
	// startup: the connect timeout (1 s).
	within("a new connection", 3*time.Second, func(ctx context.Context) error {
		_, err := pool.Exec(ctx, `SELECT 1`)
		return err
	})
}

// TestIdleConnectionThroughABlackHoleFailsWithinBounds: a connection idle
// for a while is pinged when it is next taken from the pool. With the
// database black-holed, that ping must fail at the client's query deadline
// like any statement; it had none, and hung the caller (and the process's
// shutdown, which waits for it) for as long as the silence lasted.
func TestIdleConnectionThroughABlackHoleFailsWithinBounds(t *testing.T) {
	t.Parallel()
	_, dbURL := storetest.NewStore(t)
	proxy, pool := poolBehindProxy(t, dbURL)
	if _, err := pool.Exec(t.Context(), `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // idle long enough to be pinged when taken
	proxy.BlackHole()

	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := pool.Exec(context.Background(), `SELECT 1`) // no deadline of the caller's
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a statement through a black hole succeeded")
		}
		// The ping's deadline is the statement's (1.5 s), then a new
		// connection's startup its connect timeout (1 s).
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("failed after %v, want within 4 s", took)
		}
		t.Logf("an idle connection taken through the black hole failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		_ = proxy.Close() // let the pinging goroutine go
		t.Fatal("a statement on an idle connection through a black hole still hangs after 10 s")
	}
}

// TestBlackHoledTransactionReleasesItsLocks: a process's database goes
// silent in the middle of a transaction. The server still holds the
// session, idle in its transaction, and its row locks: every other
// process that needs those rows waited behind it for as long as the
// silence lasted (the server's keepalive takes hours). The session is
// ended once it has been idle in its transaction longer than a statement
// may take, and the locks go with it.
func TestBlackHoledTransactionReleasesItsLocks(t *testing.T) {
	t.Parallel()
	s, dbURL := storetest.NewStore(t)
	proxy, silent := poolBehindProxy(t, dbURL)
	if _, err := s.Pool().Exec(t.Context(), `CREATE TABLE lock_probe (id int PRIMARY KEY, n int); INSERT INTO lock_probe VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	tx, err := silent.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Given up on when the test ends, as the process gives up on it at its
	// query deadline: the pool cannot close while it holds a connection.
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), `UPDATE lock_probe SET n = n + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	proxy.BlackHole() // the process goes silent holding the row's lock

	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.Pool().Exec(ctx, `UPDATE lock_probe SET n = n + 10 WHERE id = 1`); err != nil {
		t.Fatalf("another process's update of the row the silent one locked: %v after %v", err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("the silent transaction's lock was released after %v", time.Since(start).Round(time.Millisecond))
}

// poolBehindProxy connects a pool to dbURL through a faultnet proxy, with
// bounds of a second. Two connections: pgx takes up to 15 s to clean up a
// dead one (its cancel request goes into the black hole too) before its
// slot is free. The proxy closes first when the test ends, so the pool's
// cleanup of dead connections then ends at once.
func poolBehindProxy(t *testing.T, dbURL string) (*faultnet.Proxy, *pgxpool.Pool) {
	t.Helper()
	proxy, viaProxy, err := faultnet.ListenURL(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	bounds := store.Bounds{ConnectTimeout: time.Second, StatementTimeout: time.Second, TCPUserTimeout: 2 * time.Second}
	pool, err := store.Connect(t.Context(), viaProxy, 2, bounds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy, pool
}
