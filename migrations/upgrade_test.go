package migrations_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callqueue/callqueue/migrations"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestUpAppliesAMigrationNumberedBelowTheNewest: a database upgraded before
// 0007 existed is already at 0008; Up must still apply 0007, since the
// migrator applies every version it has not recorded, not only the ones
// above the newest.
func TestUpAppliesAMigrationNumberedBelowTheNewest(t *testing.T) {
	t.Parallel()
	pool := emptyDatabase(t)
	m := newMigrator(t, pool)
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := schema(t, pool)
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(m migrations.Migration) bool { return m.Version == 7 })
	if i < 0 || all[len(all)-1].Version <= 7 {
		t.Fatal("this test needs migration 0007 and a newer one")
	}
	// The database as an earlier release left it: 0008 applied, 0007 not.
	if _, err := pool.Exec(t.Context(), all[i].Down); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `DELETE FROM schema_migrations WHERE version = 7`); err != nil {
		t.Fatal(err)
	}
	applied, err := m.Up(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, []int{7}) {
		t.Fatalf("Up applied %v, want [7]", applied)
	}
	if got := schema(t, pool); !slices.Equal(got, want) {
		t.Fatalf("schema after the late 0007 differs:\n%s", diff(want, got))
	}
}

// TestAuditLogIsAppendOnly: entries can be added, never changed or
// removed, and deleting their integration keeps them.
func TestAuditLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	s, _ := storetest.NewStore(t)
	pool := s.Pool()
	ctx := t.Context()
	integ := insertIntegration(t, pool, "Audited", "audited")
	if _, err := pool.Exec(ctx, `INSERT INTO audit_logs (integration_id, owner_id, actor, action, resource)
		VALUES ($1, 'owner', 'owner', 'create', 'integration')`, integ); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM integrations WHERE id = $1`, integ); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE integration_id = $1`, integ).Scan(&kept); err != nil || kept != 1 {
		t.Fatalf("entries of the deleted integration = %d, %v; want 1", kept, err)
	}
	for _, stmt := range []string{
		`UPDATE audit_logs SET actor = 'someone else'`,
		`DELETE FROM audit_logs`,
		`TRUNCATE audit_logs`,
	} {
		_, err := pool.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: %v, want refused (42501)", stmt, err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_logs WHERE actor = 'owner'`).Scan(&kept); err != nil || kept != 1 {
		t.Fatalf("entries after refused changes = %d, %v; want 1", kept, err)
	}
}
