// Tests of scripts/pg.sh, the throwaway local Postgres: checkouts side by side each get their
// own cluster and port, and clusters whose checkout was deleted are found and stopped.
package scripts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgsh runs scripts/pg.sh with a data directory and relocation directory of the test's own,
// never the environment's DATABASE_URL or port, and returns its last line of output.
func pgsh(t *testing.T, dataDir, relocate string, args ...string) string {
	t.Helper()
	cmd := exec.Command("./pg.sh", args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "CALLQUEUE_") {
			env = append(env, kv)
		}
	}
	env = append(env, "CALLQUEUE_DATA_DIR="+dataDir, "CALLQUEUE_PG_RELOCATE_DIR="+relocate)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("pg.sh %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("pg.sh %s (data %s): %v\n%s", strings.Join(args, " "), dataDir, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func havePostgres() bool {
	if _, err := exec.LookPath("initdb"); err == nil {
		return true
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	return len(m) > 0
}

func answers(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx) == nil
}

// openDir is a directory the postgres OS user can reach (t.TempDir is 0700, closed to it).
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "callqueue-pgsh-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPgShCheckoutsCoexistAndAbandonedClustersAreReaped(t *testing.T) {
	if testing.Short() || !havePostgres() {
		t.Skip("needs the PostgreSQL server binaries (scripts/pg.sh installs them)")
	}
	relocate := openDir(t)
	open := openDir(t)
	// A checkout under a private directory (as t.TempDir and mktemp -d make them): under root
	// its cluster is relocated to the relocation directory. The other one is reachable, so its
	// cluster lives in its data directory.
	a := filepath.Join(t.TempDir(), "checkout-a", "data")
	b := filepath.Join(open, "checkout-b", "data")
	janitor := filepath.Join(open, "janitor", "data")
	t.Cleanup(func() {
		for _, d := range []string{a, b} {
			cmd := exec.Command("./pg.sh", "stop")
			cmd.Env = append(os.Environ(), "CALLQUEUE_DATA_DIR="+d, "CALLQUEUE_PG_RELOCATE_DIR="+relocate)
			_ = cmd.Run()
		}
		_ = os.RemoveAll(relocate)
		_ = os.RemoveAll(open)
	})

	urlA := pgsh(t, a, relocate, "start")
	urlB := pgsh(t, b, relocate, "start")
	if urlA == urlB {
		t.Fatalf("two checkouts share %s", urlA)
	}
	for _, u := range []string{urlA, urlB} {
		if !answers(u) {
			t.Fatalf("%s does not answer", u)
		}
	}
	if again := pgsh(t, a, relocate, "start"); again != urlA {
		t.Fatalf("a second start moved the cluster: %s then %s", urlA, again)
	}
	if got := pgsh(t, a, relocate, "url"); got != urlA {
		t.Fatalf("url = %s, start printed %s", got, urlA)
	}

	// Both checkouts are deleted while their clusters run; a third checkout's `pg.sh stop` (it
	// has no cluster of its own) finds both.
	for _, d := range []string{a, b} {
		if err := os.RemoveAll(filepath.Dir(d)); err != nil {
			t.Fatal(err)
		}
	}
	pgsh(t, janitor, relocate, "stop")
	for _, u := range []string{urlA, urlB} {
		if answers(u) {
			t.Errorf("%s still answers after pg.sh stop", u)
		}
	}
	left, _ := filepath.Glob(filepath.Join(relocate, "*"))
	if len(left) != 0 {
		t.Errorf("relocated clusters left behind: %v", left)
	}
}
