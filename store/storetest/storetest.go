// Package storetest gives each test its own migrated Postgres database,
// cloned from a template that is migrated once per schema version (river's
// riverdbtest does the same). Tests need DATABASE_URL (make test sets it).
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callqueue/callqueue/migrations"
	"github.com/callqueue/callqueue/store"
)

// SecretKey is the fixed key tests encrypt with.
var SecretKey = []byte("0123456789abcdef0123456789abcdef")

// AdminURL is the server's DSN from DATABASE_URL; the test fails when unset.
func AdminURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Fatal("DATABASE_URL is not set: run the tests with `make test`, which starts a local Postgres")
	}
	return url
}

func withDatabase(url, db string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", err
	}
	i := strings.Index(url, "?")
	q := ""
	if i >= 0 {
		q = url[i:]
		url = url[:i]
	}
	j := strings.LastIndex(url, "/")
	if j < len("postgres://") || cfg.Database == "" {
		return url + "/" + db + q, nil
	}
	return url[:j+1] + db + q, nil
}

func templateName() (string, error) {
	all, err := migrations.All()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range all {
		fmt.Fprintf(h, "%d%s%s", m.Version, m.Up, m.Down)
	}
	return "cq_template_" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// NewDatabase creates a fresh migrated database for t and returns its URL.
// It is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", admin, err)
	}
	defer conn.Close(ctx)
	tmpl, err := templateName()
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureTemplate(ctx, conn, admin, tmpl); err != nil {
		t.Fatalf("prepare template database: %v", err)
	}
	name := "cq_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	// CREATE DATABASE ... TEMPLATE needs the template to have no other
	// sessions; templates are never connected to after being built.
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmpl)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	url, err := withDatabase(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
	})
	return url
}

func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, tmpl string) error {
	// Test packages run in parallel processes: one builds the template.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7263001)`); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7263001)`) //nolint:errcheck // released with the session
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := tmpl + "_build"
	_, _ = conn.Exec(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, building))
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s`, building)); err != nil {
		return err
	}
	url, err := withDatabase(admin, building)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	m, err := migrations.New(pool)
	if err == nil {
		_, err = m.Up(ctx)
	}
	pool.Close()
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %s RENAME TO %s`, building, tmpl))
	return err
}

// NewStore returns a Store over a fresh database, with its URL.
func NewStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	url := NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = store.RegisterTypes // as store.Connect does
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	sealer, err := store.NewSealer(SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	return store.New(pool, sealer), url
}
