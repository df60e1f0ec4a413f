package service_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
)

// A client that never finishes its request headers is cut off (the
// contract's 10 s, shortened here) instead of holding a connection.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{HeaderTimeout: 200 * time.Millisecond})
	conn, err := net.Dial("tcp", in.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: callqueue\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	// The bound is only how long the test waits for the server to act.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(make([]byte, 512))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the connection stayed open with its headers unfinished")
	}
	if err == nil && n > 0 {
		t.Logf("the server answered before closing (%d bytes)", n)
	}
}

// /readyz names the failing check, never the driver's words.
func TestReadyzShowsNoErrorText(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if code := servicetest.Request(t, "GET", in.URL+"/readyz", nil, nil, &ready); code != http.StatusOK || ready.Status != "ok" ||
		ready.Checks["db"] != "ok" || ready.Checks["queue"] != "ok" {
		t.Fatalf("readyz = %d %+v", code, ready)
	}
	env.StopNATS()
	// Each check has 2 s; on a loaded machine Postgres may miss them once.
	var status int
	var raw []byte
	for try := 0; try < 5; try++ {
		status, _, raw = servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/readyz", nil, nil)
		if err := json.Unmarshal(raw, &ready); err == nil && ready.Checks["db"] == "ok" {
			break
		}
	}
	if err := json.Unmarshal(raw, &ready); err != nil || status != http.StatusServiceUnavailable || ready.Status != "unavailable" ||
		ready.Checks["queue"] != "down" || ready.Checks["db"] != "ok" || len(ready.Checks) != 2 {
		t.Fatalf("readyz with NATS down = %d %s", status, raw)
	}
	if strings.Contains(string(raw), "nats") || strings.Contains(string(raw), "127.0.0.1") {
		t.Errorf("readyz shows error text: %s", raw)
	}
}

// agent-postcall (25 MiB allowed) refuses an unauthenticated client before
// reading its body: the client announces 20 MiB, sends 256 KiB and waits.
// A server that read the body first would never answer. With a signing
// secret the signature covers the body, so only a header that could be a
// current signature gets the body read; a missing, malformed or stale one
// is refused first.
func TestPostcallAuthenticatesBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{})
	admin := env.Admin(in, "owner-postcall-auth")
	integ := admin.CreateIntegration("Postcall auth", nil, nil)
	signed := admin.CreateIntegration("Postcall signed", nil, nil)
	if code := admin.Do("POST", "/api/integrations/"+signed.ID.String()+"/secrets",
		map[string]any{"key": "ELEVENLABS_WEBHOOK_SECRET", "value": "whsec-postcall-auth"}, nil); code != http.StatusCreated {
		t.Fatalf("signing secret: %d", code)
	}
	stale := env.Clock.Now().Add(-2 * time.Hour).Unix()
	for _, c := range []struct{ name, slug, header string }{
		{"no token", integ.Slug, ""},
		{"wrong token", integ.Slug, "X-Webhook-Token: not-the-token\r\n"},
		{"signed: no signature", signed.Slug, "X-Webhook-Token: " + signed.WebhookToken + "\r\n"},
		{"signed: malformed signature", signed.Slug, "ElevenLabs-Signature: v0=abc\r\n"},
		{"signed: stale signature", signed.Slug, "ElevenLabs-Signature: t=" + strconv.FormatInt(stale, 10) + ",v0=" + strings.Repeat("ab", 32) + "\r\n"},
	} {
		conn, err := net.Dial("tcp", in.Addr())
		if err != nil {
			t.Fatal(err)
		}
		head := "POST /" + c.slug + "/webhook/agent-postcall HTTP/1.1\r\nHost: callqueue\r\n" + c.header +
			"Content-Type: application/json\r\nContent-Length: 20971520\r\n\r\n"
		if _, err := conn.Write([]byte(head)); err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write(bytes.Repeat([]byte("a"), 256<<10))
		// The bound is only how long the test waits for an answer.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			_ = conn.Close()
			t.Fatalf("%s: no answer before the body was sent (%v)", c.name, err)
		}
		_ = resp.Body.Close()
		_ = conn.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", c.name, resp.StatusCode)
		}
	}
}

// CALLQUEUE_METRICS_TOKEN protects /metrics.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{MetricsToken: "metrics-secret"})
	if code := servicetest.Request(t, "GET", in.URL+"/metrics", nil, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token = %d, want 401", code)
	}
	status, _, raw := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/metrics",
		map[string]string{"Authorization": "Bearer metrics-secret"}, nil)
	if status != http.StatusOK || !strings.Contains(string(raw), "# TYPE") {
		t.Errorf("/metrics with the token = %d", status)
	}
}
