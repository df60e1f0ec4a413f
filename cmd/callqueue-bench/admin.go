package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/callqueue/callqueue/bench/load"
)

// adminList measures GET /api/calls?limit=100 with 100,000 calls in the
// table, spread over ten integrations of the owner and a second owner.
func (b *bench) adminList(ctx context.Context) error {
	const calls, clients = 100000, 4
	w, err := b.newWorld(ctx, "admin")
	if err != nil {
		return err
	}
	defer w.close()
	svc, in, token, err := w.startIdle(ctx, "api", `{"concurrency_limit": 3}`)
	if err != nil {
		return err
	}
	// Ten integrations for the owner, one for somebody else; calls spread
	// over them with a mix of statuses and a year of creation times.
	if _, err := w.st.Pool().Exec(ctx, `
		INSERT INTO integrations (id, name, slug, owner_id, webhook_token_enc)
		SELECT gen_random_uuid(), 'bench ' || g, 'bench-' || g, CASE WHEN g = 10 THEN 'other' ELSE 'bench' END, '\x00'
		FROM generate_series(1, 10) AS g`); err != nil {
		return err
	}
	if _, err := w.st.Pool().Exec(ctx, `
		WITH ids AS (SELECT array_agg(id) AS a FROM integrations)
		INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, created_at, updated_at,
			next_retry_at, slot_taken_at)
		SELECT gen_random_uuid(), ids.a[1 + g % array_length(ids.a, 1)], '+38099' || lpad((g % 1000000)::text, 7, '0'),
			s.status, 1, 3, t, t, t,
			CASE WHEN s.status = 'retry_scheduled' THEN t + interval '5 minutes' END,
			CASE WHEN s.status IN ('initiated', 'in_progress') THEN t END
		FROM generate_series(1, $1) AS g, ids,
			LATERAL (SELECT (ARRAY['completed','completed','completed','failed','waiting_postcall','retry_scheduled',
				'queued','cancelled'])[1 + g % 8] AS status) s,
			LATERAL (SELECT now() - (g || ' minutes')::interval / 2 AS t) ts`, calls); err != nil {
		return err
	}
	if _, err := w.st.Pool().Exec(ctx, `ANALYZE calls`); err != nil {
		return err
	}
	client := load.NewClient(clients)
	header := http.Header{"Authorization": {"Bearer " + token}}
	url := "http://" + svc.Addr() + "/api/calls?limit=100"
	res := load.ClosedGET(ctx, client, clients, time.Second, b.duration, url, header)
	if res.Failed > 0 {
		return fmt.Errorf("%d list requests failed", res.Failed)
	}
	byIntegration := load.ClosedGET(ctx, client, clients, 500*time.Millisecond, b.duration/2,
		url+"&integrationId="+in.ID.String()+"&status=completed", header)
	metric("admin_list_rps", res.RPS(), "req/s")
	metric("admin_list_p99_ms", load.MS(res.Percentile(0.99)), "ms")
	metric("admin_list_filtered_p99_ms", load.MS(byIntegration.Percentile(0.99)), "ms")
	return reportOpenLoop(ctx, client, res.RPS(), b.duration, http.MethodGet, header, nil, openTarget{"admin_list", url})
}
