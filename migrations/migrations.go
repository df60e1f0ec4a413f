// Package migrations holds callqueue's schema as numbered, embedded SQL files
// (NNNN_name.up.sql / NNNN_name.down.sql) and the Migrator that applies them,
// recording each applied version in schema_migrations.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockKey serialises migrators of several replicas starting at once.
const lockKey = 0x63616c6c71 // "callq"

// Migration is one schema version.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Status is a migration and when it was applied (zero when pending).
type Status struct {
	Migration
	AppliedAt time.Time
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		body, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d_%s needs both up and down files", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// Migrator applies and reverts migrations.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []Migration
}

// New returns a Migrator over the embedded migrations.
func New(pool *pgxpool.Pool) (*Migrator, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	return &Migrator{pool: pool, migrations: all}, nil
}

// Up applies every pending migration, each in its own transaction, and
// returns the versions applied.
func (m *Migrator) Up(ctx context.Context) ([]int, error) {
	var applied []int
	err := m.locked(ctx, func(conn *pgxpool.Conn, done map[int]time.Time) error {
		for _, mig := range m.migrations {
			if _, ok := done[mig.Version]; ok {
				continue
			}
			if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, mig.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, mig.Version, mig.Name)
				return err
			}); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", mig.Version, mig.Name, err)
			}
			applied = append(applied, mig.Version)
		}
		return nil
	})
	return applied, err
}

// Down reverts the last n applied migrations (n <= 0 reverts one).
func (m *Migrator) Down(ctx context.Context, n int) ([]int, error) {
	n = max(n, 1)
	var reverted []int
	err := m.locked(ctx, func(conn *pgxpool.Conn, done map[int]time.Time) error {
		for i := len(m.migrations) - 1; i >= 0 && len(reverted) < n; i-- {
			mig := m.migrations[i]
			if _, ok := done[mig.Version]; !ok {
				continue
			}
			if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, mig.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, mig.Version)
				return err
			}); err != nil {
				return fmt.Errorf("revert migration %04d_%s: %w", mig.Version, mig.Name, err)
			}
			reverted = append(reverted, mig.Version)
		}
		return nil
	})
	return reverted, err
}

// Status lists every migration with its applied time.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	err := m.locked(ctx, func(_ *pgxpool.Conn, done map[int]time.Time) error {
		for _, mig := range m.migrations {
			out = append(out, Status{Migration: mig, AppliedAt: done[mig.Version]})
		}
		return nil
	})
	return out, err
}

// Pending reports how many migrations are not applied.
func (m *Migrator) Pending(ctx context.Context) (int, error) {
	st, err := m.Status(ctx)
	n := 0
	for _, s := range st {
		if s.AppliedAt.IsZero() {
			n++
		}
	}
	return n, err
}

func (m *Migrator) locked(ctx context.Context, fn func(*pgxpool.Conn, map[int]time.Time) error) error {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	// Waiting for another process's migrations, and a migration itself,
	// may take longer than the pool's statement_timeout.
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return fmt.Errorf("lift statement_timeout: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`) //nolint:errcheck // fails only on a broken connection, which the pool drops
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey) //nolint:errcheck // released with the session anyway
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return err
	}
	done := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return err
		}
		done[v] = at
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return fn(conn, done)
}
