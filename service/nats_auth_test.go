package service_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/service"
	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store/storetest"
)

// startEmbedded runs an api-role process on its own embedded NATS server
// listening on a random port, with token as CALLQUEUE_NATS_TOKEN.
func startEmbedded(t *testing.T, token string) (*service.Service, string) {
	t.Helper()
	cfg := config.Service{DatabaseURL: storetest.NewDatabase(t), SecretKey: storetest.SecretKey, HTTPAddr: "127.0.0.1:0",
		NATSListen: "127.0.0.1:-1", NATSSync: "always", NATSReplicas: 1, Timezone: config.TimezoneDefault, DataDir: t.TempDir(),
		NATSAuth: queue.Auth{Token: token}}
	var notice bytes.Buffer
	svc := startAPI(t, cfg, &notice)
	return svc, notice.String()
}

// startAPI runs an api-role process with cfg, writing its notices to
// notice, until the test ends.
func startAPI(t *testing.T, cfg config.Service, notice io.Writer) *service.Service {
	t.Helper()
	svc, err := service.New(context.Background(), cfg, service.Options{Role: service.RoleAPI, Migrate: true, Notice: notice},
		zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = svc.Shutdown(ctx)
	})
	return svc
}

// connectOnce makes one attempt, so a refusal is an error.
func connectOnce(url string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.Flush()
}

// With CALLQUEUE_NATS_LISTEN the embedded server requires a token: one
// made at start and shown once on the notice writer, which the process's
// own client uses and other clients need; anyone else is refused.
func TestEmbeddedNATSListenerRequiresAToken(t *testing.T) {
	t.Parallel()
	svc, notice := startEmbedded(t, "")
	url := svc.EmbeddedNATSURL()
	if url == "" {
		t.Fatal("the embedded server does not listen")
	}
	if err := connectOnce(url); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("a client without the token: %v; want an authorization error", err)
	}
	lines := strings.Split(strings.TrimSpace(notice), "\n")
	if len(lines) < 2 || len(lines[1]) != 48 || !strings.Contains(notice, "CALLQUEUE_NATS_TOKEN") {
		t.Fatalf("the notice does not show the token with a hint: %q", notice)
	}
	token := lines[1]
	if strings.Count(notice, token) != 1 {
		t.Errorf("the token is shown %d times, want once", strings.Count(notice, token))
	}
	if err := connectOnce(url, nats.Token(token)); err != nil {
		t.Fatalf("a client with the token shown: %v", err)
	}
	// The process itself works through its in-process connection.
	if status := servicetest.Request(t, "GET", "http://"+svc.Addr()+"/readyz", nil, nil, nil); status != http.StatusOK {
		t.Errorf("readyz = %d", status)
	}
}

// CALLQUEUE_NATS_TOKEN chooses the token; nothing is shown.
func TestEmbeddedNATSListenerTakesTheConfiguredToken(t *testing.T) {
	t.Parallel()
	svc, notice := startEmbedded(t, "operator-chosen-token")
	if notice != "" {
		t.Errorf("a configured token was shown: %q", notice)
	}
	if err := connectOnce(svc.EmbeddedNATSURL(), nats.Token("operator-chosen-token")); err != nil {
		t.Fatalf("with the configured token: %v", err)
	}
	if err := connectOnce(svc.EmbeddedNATSURL(), nats.Token("guess")); err == nil {
		t.Error("a wrong token was let in")
	}
	if status := servicetest.Request(t, "GET", "http://"+svc.Addr()+"/readyz", nil, nil, nil); status != http.StatusOK {
		t.Errorf("readyz = %d", status)
	}
}

// Against an external NATS that knows callqueue as an nkey user, the
// service signs in with CALLQUEUE_NATS_NKEY and works.
func TestExternalNATSWithNkey(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: queue.MaxPayload, Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	seedFile := filepath.Join(t.TempDir(), "callqueue.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Service{DatabaseURL: storetest.NewDatabase(t), SecretKey: storetest.SecretKey, HTTPAddr: "127.0.0.1:0",
		NATSURL: ns.ClientURL(), NATSReplicas: 1, Timezone: config.TimezoneDefault, DataDir: t.TempDir(),
		NATSAuth: queue.Auth{NkeySeed: seedFile}}
	svc := startAPI(t, cfg, io.Discard)
	if status := servicetest.Request(t, "GET", "http://"+svc.Addr()+"/readyz", nil, nil, nil); status != http.StatusOK {
		t.Errorf("readyz = %d", status)
	}
	if err := connectOnce(ns.ClientURL()); err == nil {
		t.Error("the server let an anonymous client in: the test proves nothing")
	}
}
