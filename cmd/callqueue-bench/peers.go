package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/bench/load"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
)

// fakeCRM speaks the generic webhook CRM: lookups by phone, updates.
type fakeCRM struct {
	*httptest.Server
	down            atomic.Bool
	lookups, update atomic.Int64
}

func newFakeCRM() *fakeCRM {
	f := &fakeCRM{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, `{"error":"down"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/lookup":
			f.lookups.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"recordId": "rec-" + r.URL.Query().Get("phone"),
				"fields": map[string]any{"Name": "Іван", "Company": "ТОВ Компанія", "Source": "Facebook"}})
		case "/update":
			f.update.Add(1)
			_, _ = w.Write([]byte(`{"ok":true}`))
		default:
			http.NotFound(w, r)
		}
	}))
	return f
}

// useCRM points an integration at the fake CRM.
func (w *world) useCRM(ctx context.Context, id uuid.UUID, crmURL string) error {
	if err := w.st.PutConfig(ctx, store.ActorCLI, id, config.KeyCRM, []byte(fmt.Sprintf(`{"kind":"webhook","lookup_url":%q,"update_url":%q}`,
		crmURL+"/lookup", crmURL+"/update"))); err != nil {
		return err
	}
	_, err := w.st.PutSecret(ctx, store.ActorCLI, id, store.KindSecret, "CRM_WEBHOOK_SECRET", "bench-crm-secret", true)
	return err
}

// agentInit measures agent-init answers with the caller's context in the
// shared cache, and with the CRM down and its breaker open.
func (b *bench) agentInit(ctx context.Context) error {
	w, err := b.newWorld(ctx, "agentinit")
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, _, err := w.startIdle(ctx, "webhooks", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	crmFake := newFakeCRM()
	defer crmFake.Close()
	if err := w.useCRM(ctx, in.ID, crmFake.URL); err != nil {
		return err
	}
	client := load.NewClient(b.clients)
	url := "http://" + svc.Addr() + "/" + in.Slug + "/webhook/agent-init"
	header := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Token": {in.WebhookToken}}
	const phones = 500
	for i := range phones { // warm the cache as dialling does: the call's variables and the CRM's
		svc.Callers.Warm(ctx, in.ID, fmt.Sprintf("+38097%07d", i), uuid.New(), json.RawMessage(`{"lead":"webinar"}`))
	}
	body := func(n int64) []byte { return fmt.Appendf(nil, `{"phone_number":"+38097%07d"}`, n%phones) }
	bareURL, stopBare, err := bareAgentInit(ctx, client, url, header, body(0))
	if err != nil {
		return err
	}
	defer stopBare()
	// The bare handler and agent-init take turns (bare, agent-init,
	// agent-init, bare, half the duration each), so that the load other
	// processes put on the machine meanwhile weighs on both alike.
	closed := func(url string) load.Result {
		return load.Closed(ctx, client, b.clients, time.Second, b.duration/2, url, header, body)
	}
	before := crmFake.lookups.Load()
	bareFirst, hitFirst := closed(bareURL), closed(url)
	hit, bare := mergeResults(hitFirst, closed(url)), mergeResults(bareFirst, closed(bareURL))
	if extra := crmFake.lookups.Load() - before; extra != 0 || hit.Failed > 0 {
		return fmt.Errorf("cache-hit run made %d CRM lookups and had %d failures", extra, hit.Failed)
	}
	metric("agent_init_rps", hit.RPS(), "req/s")
	metric("agent_init_p99_ms", load.MS(hit.Percentile(0.99)), "ms")
	metric("agent_init_bare_rps", bare.RPS(), "req/s")
	metric("agent_init_bare_p99_ms", load.MS(bare.Percentile(0.99)), "ms")
	metric("agent_init_vs_bare", hit.RPS()/bare.RPS(), "ratio")
	// Open loop at shares of agent-init's maximum, the bare handler offered
	// the same rates in turn: what the machine and the generator cost alone.
	if err := reportOpenLoop(ctx, client, hit.RPS(), b.duration, http.MethodPost, header, body,
		openTarget{"agent_init_bare", bareURL}, openTarget{"agent_init", url}); err != nil {
		return err
	}

	// CRM down: the first lookups fail and open the breaker; then every
	// uncached caller is answered with the date variables only, at once.
	crmFake.down.Store(true)
	for i := range 10 {
		_ = postJSON(client, url, in.WebhookToken, map[string]any{"phone_number": fmt.Sprintf("+38096%07d", i)})
	}
	down := load.Closed(ctx, client, b.clients, time.Second, b.duration, url, header, func(n int64) []byte {
		return fmt.Appendf(nil, `{"phone_number":"+38095%07d"}`, n)
	})
	if down.Failed > 0 {
		return fmt.Errorf("%d agent-init requests failed with the CRM down", down.Failed)
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: agent-init: CRM lookups while down: %d\n", crmFake.lookups.Load()-before)
	metric("agent_init_crm_down_p99_ms", load.MS(down.Percentile(0.99)), "ms")
	return nil
}

// bareAgentInit starts a bare net/http handler that reads the body and
// answers the bytes agent-init answered to sample: what agent-init is
// compared with in the same run.
func bareAgentInit(ctx context.Context, client *http.Client, url string, header http.Header, sample []byte) (string, func(), error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(sample))
	if err != nil {
		return "", nil, err
	}
	req.Header = header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", nil, fmt.Errorf("agent-init sample: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("agent-init sample: %d", resp.StatusCode)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	return srv.URL + "/", srv.Close, nil
}

// mergeResults is runs measured in turns as one.
func mergeResults(runs ...load.Result) load.Result {
	var all load.Result
	for _, r := range runs {
		all.OK += r.OK
		all.Failed += r.Failed
		all.Elapsed += r.Elapsed
		all.Latencies = append(all.Latencies, r.Latencies...)
	}
	slices.Sort(all.Latencies)
	return all
}

// outbox measures how fast pending CRM updates drain to a fast CRM.
func (b *bench) outbox(ctx context.Context) error {
	const updates = 5000
	w, err := b.newWorld(ctx, "outbox")
	if err != nil {
		return err
	}
	defer w.close()
	if _, err := w.start(ctx, "api", true, nil); err != nil {
		return err
	}
	in, _, err := w.setupIntegration(ctx, "", "http://127.0.0.1:1", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	crmFake := newFakeCRM()
	defer crmFake.Close()
	if err := w.useCRM(ctx, in.ID, crmFake.URL); err != nil {
		return err
	}
	ids := make([]uuid.UUID, updates)
	for i := range ids {
		ids[i] = uuid.New()
	}
	now := time.Now()
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts,
			queued_at, outcome, created_at, updated_at)
		SELECT id, $2, '+380990000000', 'completed', 1, 3, $3, 'success', $3, $3 FROM unnest($1::uuid[]) AS id`, ids, in.ID, now); err != nil {
		return err
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO crm_outbox (id, integration_id, call_id, event, payload, next_attempt_at, created_at)
		SELECT gen_random_uuid(), $2, id, 'call.completed',
			jsonb_build_object('event', 'call.completed', 'callId', id, 'status', 'completed', 'outcome', 'success'), $3, $3
		FROM unnest($1::uuid[]) AS id`, ids, in.ID, now); err != nil {
		return err
	}
	start := time.Now()
	if _, err := w.start(ctx, "workers", false, nil); err != nil {
		return err
	}
	if err := w.waitCount(ctx, `SELECT count(*) FROM crm_outbox WHERE status = 'delivered'`, updates, 3*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if got := crmFake.update.Load(); got != updates {
		return fmt.Errorf("fake CRM got %d updates for %d pending", got, updates)
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: outbox: %d updates delivered in %s\n", updates, elapsed.Round(time.Millisecond))
	metric("crm_outbox_drain_per_s", float64(updates)/elapsed.Seconds(), "updates/s")
	return nil
}
