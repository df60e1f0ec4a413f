package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callqueue/callqueue/internal/syncbuf"
	"github.com/callqueue/callqueue/store/storetest"
)

// TestMakeRunDemo runs scripts/run.sh — what `make run` runs — from a copy
// of the scripts in a temporary directory, with bin/callqueue being this
// test binary (see TestMain), its own data directory and an existing
// database, so that no second Postgres is started. The banner's line that
// queues 20 calls is run as a user would paste it; the simulator then dials
// them: answered calls reach completed and unanswered or short ones are
// retried. Ctrl-C stops the service cleanly.
func TestMakeRunDemo(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"run.sh", "pg.sh"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "scripts"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "scripts", name), src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := "#!/bin/sh\n# bin/callqueue for the test: the test binary runs main with these arguments.\n" +
		"args=''; for a in \"$@\"; do if [ -z \"$args\" ]; then args=\"$a\"; else args=\"$args\n$a\"; fi; done\n" +
		"CALLQUEUE_TEST_MAIN_ARGS=\"$args\" exec '" + self + "'\n"
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "callqueue"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	cmd := exec.Command("bash", filepath.Join(dir, "scripts", "run.sh"))
	cmd.Env = append(os.Environ(), "DATABASE_URL="+storetest.NewDatabase(t), "CALLQUEUE_DATA_DIR="+filepath.Join(dir, "data"),
		"CALLQUEUE_HTTP_ADDR="+addr, "CALLQUEUE_SECRET_KEY=", "CALLQUEUE_LOG_LEVEL=warn", "CALLQUEUE_LOG_FORMAT=json")
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		// Read the banner, then keep draining so the script never blocks.
		exited <- cmd.Wait()
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-exited:
			return err
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			return <-exited
		}
	}
	t.Cleanup(func() { _ = stop() })

	banner := readBanner(t, stdout, stderr)
	field := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("the banner has no %s:\n%s", re, banner)
		}
		return strings.TrimSpace(m[1])
	}
	token := field(`admin token\s+(\S+)`)
	id := field(`\n\s+id\s+(\S+)`)
	queueLine := field(`\n\s+(r=\$\(date.*)\n`)
	watchLine := field(`\n\s+(while :; do curl.*)\n`)
	for _, want := range []string{"/api/docs", "/admin/", "/demo/docs"} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner does not mention %s", want)
		}
	}

	var integ struct {
		Status string `json:"status"`
	}
	getJSON(t, "http://"+addr+"/api/integrations/"+id, token, &integ)
	if integ.Status != "active" {
		t.Fatalf("the demo integration is %q, want active", integ.Status)
	}

	out, err := exec.Command("bash", "-c", queueLine).CombinedOutput()
	if err != nil || strings.Count(string(out), `"success":true`) != 20 {
		t.Fatalf("the queue line: %v\n%s", err, out)
	}

	type call struct {
		Status  string  `json:"status"`
		Attempt int     `json:"attempt"`
		Outcome *string `json:"outcome"`
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var calls []call
		getJSON(t, "http://"+addr+"/api/calls?limit=100&integrationId="+id, token, &calls)
		completed, retried := 0, 0
		for _, c := range calls {
			if c.Status == "completed" {
				completed++
			}
			unanswered := c.Outcome != nil && (*c.Outcome == "short_call" || *c.Outcome == "no_answer" || *c.Outcome == "busy")
			if unanswered && (c.Status == "retry_scheduled" || c.Status == "failed" || c.Attempt > 1) {
				retried++
			}
		}
		// The webhook answered once each call was in JetStream; the workers
		// may still be taking the last ones in.
		if len(calls) > 20 {
			t.Fatalf("%d demo calls, want 20", len(calls))
		}
		if len(calls) == 20 && completed > 0 && retried > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes %d completed and %d retried: %+v", completed, retried, calls)
		}
		time.Sleep(500 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	watched, _ := exec.CommandContext(ctx, "bash", "-c", watchLine).Output()
	if !strings.Contains(string(watched), `"completed":`) {
		t.Errorf("the watch line printed %q", watched)
	}

	if err := stop(); err != nil {
		t.Errorf("make run exited with %v after Ctrl-C\n%s", err, stderr.String())
	}
}

// readBanner reads run.sh's stdout up to the end of its banner.
func readBanner(t *testing.T, stdout io.Reader, stderr *syncbuf.Buffer) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var b strings.Builder
	rules := 0
	timeout := time.After(3 * time.Minute)
	for rules < 2 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("run.sh ended before its banner:\n%s\nstderr:\n%s", b.String(), stderr.String())
			}
			b.WriteString(line + "\n")
			if strings.HasPrefix(line, "=====") {
				rules++
			}
		case <-timeout:
			t.Fatalf("no banner after 3 minutes:\n%s\nstderr:\n%s", b.String(), stderr.String())
		}
	}
	go func() { // keep draining
		for range lines {
		}
	}()
	return b.String()
}

func getJSON(t *testing.T, url, token string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
