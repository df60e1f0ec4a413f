package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/migrations"
	"github.com/callqueue/callqueue/store/storetest"
)

func TestMain(m *testing.M) {
	// Pools are closed in t.Cleanup, which also stops pgxpool's background
	// health checks: nothing may outlive the tests.
	goleak.VerifyTestMain(m)
}

// emptyDatabase creates a database with no schema at all for t and returns
// a pool over it. Both are dropped when t ends.
func emptyDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	admin := storetest.AdminURL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "cq_mig_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newMigrator(t *testing.T, pool *pgxpool.Pool) *migrations.Migrator {
	t.Helper()
	m, err := migrations.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func allVersions(t *testing.T) []int {
	t.Helper()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 {
		t.Fatal("no migrations embedded")
	}
	var out []int
	for i, m := range all {
		if i > 0 && m.Version <= all[i-1].Version {
			t.Fatalf("migrations out of order: %d after %d", m.Version, all[i-1].Version)
		}
		if strings.TrimSpace(m.Up) == "" || strings.TrimSpace(m.Down) == "" {
			t.Fatalf("migration %d has an empty up or down", m.Version)
		}
		out = append(out, m.Version)
	}
	return out
}

// schema describes every column, constraint and index of the public schema
// other than the migrator's own bookkeeping, one line each, sorted.
func schema(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT format('column %s.%s %s nullable=%s default=%s', table_name, column_name, data_type, is_nullable,
			COALESCE(column_default, ''))
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
		UNION ALL
		SELECT format('constraint %s %s %s', cl.relname, con.conname, pg_get_constraintdef(con.oid))
		FROM pg_constraint con JOIN pg_class cl ON cl.oid = con.conrelid
		JOIN pg_namespace ns ON ns.oid = cl.relnamespace
		WHERE ns.nspname = 'public' AND cl.relname <> 'schema_migrations'
		UNION ALL
		SELECT format('index %s', indexdef) FROM pg_indexes
		WHERE schemaname = 'public' AND tablename <> 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = 'public' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUpAppliesAllAndIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	m := newMigrator(t, pool)
	want := allVersions(t)

	applied, err := m.Up(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("Up applied %v, want %v", applied, want)
	}
	// The core tables, at least: later migrations add more.
	got := tables(t, pool)
	for _, want := range []string{"access_tokens", "call_attempts", "call_events", "calls", "handlers", "integration_config",
		"integrations", "processed_keys", "schema_migrations", "secrets"} {
		if !slices.Contains(got, want) {
			t.Errorf("table %s missing after Up; tables: %v", want, got)
		}
	}
	before := schema(t, pool)

	again, err := m.Up(t.Context())
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second Up applied %v again", again)
	}
	if after := schema(t, pool); !slices.Equal(before, after) {
		t.Fatalf("second Up changed the schema:\n%s", diff(before, after))
	}
	var recorded int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != len(want) {
		t.Fatalf("schema_migrations has %d rows, want %d", recorded, len(want))
	}
}

func TestDownThenUpRoundTrips(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	m := newMigrator(t, pool)
	versions := allVersions(t)
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := schema(t, pool)
	if len(want) == 0 {
		t.Fatal("no schema after Up")
	}

	reverted, err := m.Down(t.Context(), len(versions)+5)
	if err != nil {
		t.Fatal(err)
	}
	wantReverted := slices.Clone(versions)
	slices.Reverse(wantReverted)
	if !slices.Equal(reverted, wantReverted) {
		t.Fatalf("Down reverted %v, want %v (newest first)", reverted, wantReverted)
	}
	if got := tables(t, pool); !slices.Equal(got, []string{"schema_migrations"}) {
		t.Fatalf("tables after Down = %v, want only schema_migrations", got)
	}
	if pending, err := m.Pending(t.Context()); err != nil || pending != len(versions) {
		t.Fatalf("Pending after Down = %d, %v; want %d", pending, err, len(versions))
	}
	if again, err := m.Down(t.Context(), 1); err != nil || len(again) != 0 {
		t.Fatalf("Down with nothing applied = %v, %v", again, err)
	}

	if _, err := m.Up(t.Context()); err != nil {
		t.Fatalf("Up after Down: %v", err)
	}
	if got := schema(t, pool); !slices.Equal(got, want) {
		t.Fatalf("schema after Down+Up differs:\n%s", diff(want, got))
	}
}

func TestDownDefaultsToOne(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	m := newMigrator(t, pool)
	versions := allVersions(t)
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, -3} {
		reverted, err := m.Down(t.Context(), n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(reverted, versions[len(versions)-1:]) {
			t.Fatalf("Down(%d) reverted %v, want only the newest %d", n, reverted, versions[len(versions)-1])
		}
		if _, err := m.Up(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStatusListsAppliedAndPending(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	m := newMigrator(t, pool)
	versions := allVersions(t)

	check := func(stage string, applied map[int]bool) {
		t.Helper()
		st, err := m.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != len(versions) {
			t.Fatalf("%s: Status lists %d migrations, want %d", stage, len(st), len(versions))
		}
		pending := 0
		for i, s := range st {
			if s.Version != versions[i] || s.Name == "" {
				t.Errorf("%s: Status[%d] = %d %q, want version %d with its name", stage, i, s.Version, s.Name, versions[i])
			}
			if got := !s.AppliedAt.IsZero(); got != applied[s.Version] {
				t.Errorf("%s: migration %d applied = %v (at %v), want %v", stage, s.Version, got, s.AppliedAt, applied[s.Version])
			}
			if applied[s.Version] && time.Since(s.AppliedAt) > time.Hour {
				t.Errorf("%s: migration %d applied at %v", stage, s.Version, s.AppliedAt)
			}
			if !applied[s.Version] {
				pending++
			}
		}
		if n, err := m.Pending(t.Context()); err != nil || n != pending {
			t.Errorf("%s: Pending = %d, %v; want %d", stage, n, err, pending)
		}
	}

	check("fresh", map[int]bool{})
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	all := map[int]bool{}
	for _, v := range versions {
		all[v] = true
	}
	check("after Up", all)
	if _, err := m.Down(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	delete(all, versions[len(versions)-1])
	check("after Down 1", all)
}

func TestConcurrentUpAppliesOnce(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	versions := allVersions(t)
	const migrators = 3
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([][]int, migrators)
		errs    = make([]error, migrators)
	)
	for i := range migrators {
		// One migrator per replica, each with its own pool, as in production.
		cfg := pool.Config().Copy()
		p, err := pgxpool.NewWithConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		m := newMigrator(t, p)
		wg.Go(func() {
			<-start
			results[i], errs[i] = m.Up(t.Context())
		})
	}
	close(start)
	wg.Wait()
	var applied []int
	for i := range migrators {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		applied = append(applied, results[i]...)
	}
	slices.Sort(applied)
	if !slices.Equal(applied, versions) {
		t.Fatalf("migrators applied %v between them, want each of %v exactly once", applied, versions)
	}
	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(versions) {
		t.Fatalf("schema_migrations has %d rows, want %d", rows, len(versions))
	}
}

// TestSchemaInvariants checks that the database itself refuses rows that
// break the call and integration rules, whatever the Go code does.
func TestSchemaInvariants(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	pool := s.Pool()
	ctx := t.Context()
	integ := insertIntegration(t, pool, "Taken", "taken")

	insertIntegration := func(slug string) error {
		_, err := pool.Exec(ctx, `INSERT INTO integrations (id, owner_id, name, slug, webhook_token_enc)
			VALUES ($1, 'owner', 'Other', $2, '\x00')`, uuid.New(), slug)
		return err
	}
	// insertCall inserts a valid queued call with the given columns
	// overridden.
	insertCall := func(set map[string]any) error {
		cols := map[string]any{
			"id": uuid.New(), "integration_id": integ, "phone_number": "+380991234567", "status": "queued",
			"max_attempts": 3, "queued_at": time.Now(), "created_at": time.Now(), "updated_at": time.Now(),
		}
		for k, v := range set {
			cols[k] = v
		}
		var names, params []string
		var args []any
		for k, v := range cols {
			names = append(names, k)
			args = append(args, v)
			params = append(params, fmt.Sprintf("$%d", len(args)))
		}
		_, err := pool.Exec(ctx, `INSERT INTO calls (`+strings.Join(names, ", ")+`) VALUES (`+strings.Join(params, ", ")+`)`, args...)
		return err
	}
	now := time.Now()

	tests := []struct {
		name string
		run  func() error
		// code is the SQLSTATE wanted; "" means the row is valid.
		code       string
		constraint string
	}{
		{"valid queued call", func() error { return insertCall(nil) }, "", ""},
		{"valid initiated call", func() error {
			return insertCall(map[string]any{"status": "initiated", "attempt": 1, "slot_taken_at": now})
		}, "", ""},
		{"valid retry_scheduled call", func() error {
			return insertCall(map[string]any{"status": "retry_scheduled", "attempt": 1, "next_retry_at": now})
		}, "", ""},
		{"unknown status", func() error { return insertCall(map[string]any{"status": "ringing"}) }, "23514", "calls_status_check"},
		{"initiated without slot", func() error {
			return insertCall(map[string]any{"status": "initiated", "attempt": 1})
		}, "23514", ""},
		{"in_progress without slot", func() error {
			return insertCall(map[string]any{"status": "in_progress", "attempt": 1})
		}, "23514", ""},
		{"queued holding a slot", func() error {
			return insertCall(map[string]any{"slot_taken_at": now})
		}, "23514", ""},
		{"retry_scheduled without next_retry_at", func() error {
			return insertCall(map[string]any{"status": "retry_scheduled", "attempt": 1})
		}, "23514", ""},
		{"queued with next_retry_at", func() error {
			return insertCall(map[string]any{"next_retry_at": now})
		}, "23514", ""},
		{"attempt beyond max_attempts", func() error {
			return insertCall(map[string]any{"attempt": 4})
		}, "23514", ""},
		{"unknown dial_state", func() error {
			return insertCall(map[string]any{"dial_state": "ringing"})
		}, "23514", "calls_dial_state_check"},
		{"call of an unknown integration", func() error {
			return insertCall(map[string]any{"integration_id": uuid.New()})
		}, "23503", "calls_integration_id_fkey"},
		{"valid slug", func() error { return insertIntegration("acme-2") }, "", ""},
		{"duplicate slug", func() error { return insertIntegration("taken") }, "23505", "integrations_slug_key"},
		{"uppercase slug", func() error { return insertIntegration("Acme") }, "23514", "integrations_slug_check"},
		{"slug starting with a dash", func() error { return insertIntegration("-acme") }, "23514", "integrations_slug_check"},
		{"empty slug", func() error { return insertIntegration("") }, "23514", "integrations_slug_check"},
		{"slug of 64 characters", func() error { return insertIntegration(strings.Repeat("a", 64)) }, "23514", "integrations_slug_check"},
		{"unknown integration status", func() error {
			_, err := pool.Exec(ctx, `INSERT INTO integrations (id, owner_id, name, slug, status, webhook_token_enc)
				VALUES ($1, 'owner', 'X', $2, 'broken', '\x00')`, uuid.New(), "x-"+uuid.NewString()[:8])
			return err
		}, "23514", "integrations_status_check"},
		{"secret of an unknown kind", func() error {
			_, err := pool.Exec(ctx, `INSERT INTO secrets (id, integration_id, kind, key, value_enc, value_preview)
				VALUES ($1, $2, 'password', 'K', '\x00', '')`, uuid.New(), integ)
			return err
		}, "23514", "secrets_kind_check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if tt.code == "" {
				if err != nil {
					t.Fatalf("valid row rejected: %v", err)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.Fatalf("got %v, want SQLSTATE %s", err, tt.code)
			}
			if pgErr.Code != tt.code || (tt.constraint != "" && pgErr.ConstraintName != tt.constraint) {
				t.Fatalf("got %s on %q (%s), want %s on %q", pgErr.Code, pgErr.ConstraintName, pgErr.Message, tt.code, tt.constraint)
			}
		})
	}
}

// diff lists the lines only in a or only in b.
func diff(a, b []string) string {
	var sb strings.Builder
	for _, l := range a {
		if !slices.Contains(b, l) {
			sb.WriteString("- " + l + "\n")
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			sb.WriteString("+ " + l + "\n")
		}
	}
	return sb.String()
}

// insertIntegration adds an integration row of "owner" straight to the
// database and returns its id.
func insertIntegration(t *testing.T, pool *pgxpool.Pool, name, slug string) uuid.UUID {
	t.Helper()
	id := uuid.New()
	if _, err := pool.Exec(t.Context(), `INSERT INTO integrations (id, owner_id, name, slug, webhook_token_enc)
		VALUES ($1, 'owner', $2, $3, '\x00')`, id, name, slug); err != nil {
		t.Fatal(err)
	}
	return id
}
