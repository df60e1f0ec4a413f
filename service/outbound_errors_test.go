package service_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
)

// hostilePeers are what an integration URL can point a tenant at inside
// the operator's network: a non-HTTP service with a banner, a closed port,
// a peer that never answers, one that answers 503 with internal details,
// and one that answers 200 with a page of its own.
type hostilePeers struct {
	banner, closed, silent, unavailable, page string
	// leaks are texts no tenant may read back: the peers' bytes and the
	// transport's words about addresses.
	leaks []string
}

func startHostilePeers(t *testing.T) hostilePeers {
	t.Helper()
	listen := func(serve func(net.Conn)) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go serve(conn)
			}
		}()
		return "http://" + l.Addr().String()
	}
	var p hostilePeers
	p.banner = listen(func(c net.Conn) {
		_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6 db-7.corp.internal\r\n"))
		_ = c.Close()
	})
	silentConns := make(chan net.Conn, 100)
	t.Cleanup(func() {
		close(silentConns)
		for c := range silentConns {
			_ = c.Close()
		}
	})
	p.silent = listen(func(c net.Conn) { silentConns <- c })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.closed = "http://" + closed.Addr().String()
	_ = closed.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream 10.1.2.3:5432 refused: pq: password authentication failed", http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>router admin 10.9.8.7</html>"))
	}))
	t.Cleanup(page.Close)
	p.unavailable, p.page = unavailable.URL, page.URL
	p.leaks = []string{"SSH-2.0", "corp.internal", "10.1.2.3", "password", "10.9.8.7", "router admin", "127.0.0.1",
		"connection refused", "dial tcp", "malformed HTTP", "i/o timeout", "lookup "}
	for _, u := range []string{p.banner, p.closed, p.silent, p.unavailable, p.page} {
		p.leaks = append(p.leaks, u[strings.LastIndex(u, ":"):]) // ":port"
	}
	return p
}

// check fails the test if text carries any of the leaks.
func (p hostilePeers) check(t *testing.T, where, text string) {
	t.Helper()
	for _, leak := range p.leaks {
		if strings.Contains(text, leak) {
			t.Errorf("%s shows %q: %s", where, leak, text)
		}
	}
}

// TestOutboundErrorsAreDescribedByKind: the paths that reach a peer an
// integration names — the pre-dial check, the dialler, the spec fetch of
// sync-handlers, the CRM outbox — against each hostile peer, and what
// the call history, the API and the console read back is the kind of the
// failure (contract §7), never the transport's or the peer's words.
func TestOutboundErrorsAreDescribedByKind(t *testing.T) {
	t.Parallel()
	peers := startHostilePeers(t)
	env := servicetest.New(t)
	in := env.Start(servicetest.Options{CRMTimeout: time.Second})
	admin := env.Admin(in, "owner-outbound-errors")
	va := servicetest.NewFakeVA(t)
	integ := admin.CreateIntegration("Outbound errors", va, map[string]any{"max_attempts": 1})
	put := func(key string, value any) {
		t.Helper()
		if code := admin.Do("PUT", "/api/integrations/"+integ.ID.String()+"/config/"+key, value, nil); code != http.StatusOK {
			t.Fatalf("PUT config %s: %d", key, code)
		}
	}
	originate := func(phone string) uuid.UUID {
		t.Helper()
		var answer struct{ CallID uuid.UUID }
		if code := servicetest.Request(t, "POST", in.URL+"/"+integ.Slug+"/webhook/call-originate",
			map[string]string{"X-Webhook-Token": integ.WebhookToken}, map[string]any{"phone_number": phone}, &answer); code != http.StatusAccepted {
			t.Fatalf("originate: %d", code)
		}
		return answer.CallID
	}
	historyError := func(callID uuid.UUID) string {
		t.Helper()
		var shown string
		servicetest.Eventually(t, 20*time.Second, "the failure in the call's history", func() bool {
			err := env.Store.Pool().QueryRow(context.Background(), `SELECT detail->>'error' FROM call_events
				WHERE call_id = $1 AND detail ? 'error' ORDER BY id DESC LIMIT 1`, callID).Scan(&shown)
			return err == nil
		})
		return shown
	}
	var calls []uuid.UUID

	// The pre-dial check, against each peer.
	admin.AddSecret(integ, "PREDIAL_SECRET", "predial-secret-outbound-0123")
	for i, tt := range []struct{ url, want string }{
		{peers.banner, "connection failed"},
		{peers.closed, "connection failed"},
		{peers.silent, "timeout"},
		{peers.unavailable, "bad status 503"},
		{peers.page, "malformed answer"},
	} {
		put("predial", map[string]any{"url": tt.url, "timeout_ms": 500})
		id := originate("+38050000010" + string(rune('0'+i)))
		calls = append(calls, id)
		if got := historyError(id); got != tt.want {
			t.Errorf("pre-dial check against %s: history says %q, want %q", tt.url, got, tt.want)
		}
	}
	if code := admin.Do("DELETE", "/api/integrations/"+integ.ID.String()+"/config/predial", nil, nil); code != http.StatusOK {
		t.Fatalf("DELETE predial: %d", code)
	}

	// The dialler.
	for i, tt := range []struct{ url, want string }{
		{peers.banner, "connection failed"},
		{peers.closed, "connection failed"},
		{peers.unavailable, "bad status 503"},
	} {
		put("voice", map[string]any{"base_url": tt.url, "sip_id": "sip-1", "assistant_id": "asst-1"})
		id := originate("+38050000020" + string(rune('0'+i)))
		calls = append(calls, id)
		if got := historyError(id); got != tt.want {
			t.Errorf("originate against %s: history says %q, want %q", tt.url, got, tt.want)
		}
	}
	// What the API (and the console, its client) shows of each call.
	for _, id := range calls {
		_, _, raw := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/api/calls/"+id.String(),
			map[string]string{"Authorization": "Bearer " + admin.Token}, nil)
		peers.check(t, "GET /api/calls/"+id.String(), string(raw))
	}

	// The CRM outbox: a refused call's update, sent to each peer, keeps the
	// kind as its lastError (read back through the call above).
	for i, tt := range []struct{ url, want string }{
		{peers.banner, "connection failed"},
		{peers.closed, "connection failed"},
		{peers.silent, "timeout"},
		{peers.unavailable, "bad status 503"},
	} {
		refusing := servicetest.NewFakeVA(t)
		refusing.SetStatus(http.StatusBadRequest)
		crmInteg := admin.CreateIntegration("CRM errors "+string(rune('a'+i)), refusing, map[string]any{"max_attempts": 1})
		admin.AddSecret(crmInteg, "CRM_WEBHOOK_SECRET", "crm-webhook-secret-outbound-0123")
		if code := admin.Do("PUT", "/api/integrations/"+crmInteg.ID.String()+"/config/crm",
			map[string]any{"kind": "webhook", "update_url": tt.url}, nil); code != http.StatusOK {
			t.Fatalf("PUT config crm: %d", code)
		}
		var answer struct{ CallID uuid.UUID }
		if code := servicetest.Request(t, "POST", in.URL+"/"+crmInteg.Slug+"/webhook/call-originate",
			map[string]string{"X-Webhook-Token": crmInteg.WebhookToken}, map[string]any{"phone_number": "+38050000030" + string(rune('0'+i))}, &answer); code != http.StatusAccepted {
			t.Fatalf("originate: %d", code)
		}
		var lastError string
		servicetest.Eventually(t, 60*time.Second, "the CRM update's failure", func() bool {
			err := env.Store.Pool().QueryRow(context.Background(), `SELECT last_error FROM crm_outbox
				WHERE call_id = $1 AND last_error IS NOT NULL`, answer.CallID).Scan(&lastError)
			return err == nil
		})
		if lastError != tt.want {
			t.Errorf("CRM update to %s: lastError %q, want %q", tt.url, lastError, tt.want)
		}
		_, _, raw := servicetest.Send(t, http.DefaultClient, "GET", in.URL+"/api/calls/"+answer.CallID.String(),
			map[string]string{"Authorization": "Bearer " + admin.Token}, nil)
		peers.check(t, "GET /api/calls/"+answer.CallID.String()+" with its CRM update", string(raw))
	}

	// The spec fetch of sync-handlers answers with the kind too.
	for _, base := range []string{peers.banner, peers.closed, peers.unavailable, peers.page} {
		status, _, raw := servicetest.Send(t, http.DefaultClient, "POST", in.URL+"/api/integrations/"+integ.ID.String()+"/sync-handlers",
			map[string]string{"Authorization": "Bearer " + admin.Token}, map[string]any{"integrationName": "crm", "baseUrl": base})
		if status < 400 {
			t.Errorf("sync-handlers from %s: %d", base, status)
		}
		peers.check(t, "sync-handlers from "+base, string(raw))
	}
}
