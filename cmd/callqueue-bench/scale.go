package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callqueue/callqueue/migrations"
)

// scale measures the table-bound scenarios twice in one run: in fresh
// databases, then in copies of one that holds scaleCalls terminal calls of
// the same owner (a year of them, each with its attempt and three history
// entries, the last week's dials counted for contact caps) and 100,000
// queued calls of another integration, each scenario in both back to back,
// -scale-rounds times. It prints each figure of the second run with a
// scale_ prefix and its ratio to the first (target: ≤ 1.5; with rounds,
// each round's and their median), and the calls table's dead tuples after
// the e2e run (autovacuum keeping up).
//
// The seeded database is kept as a template (callqueue_bench_scale_template)
// and reused by the next run with the same -scale-calls.
func (b *bench) scale(ctx context.Context) error {
	type scenario struct {
		name string
		run  func(context.Context) error
	}
	scenarios := []scenario{
		{"admin", b.adminList},
		{"dispatch", b.dispatch},
		{"campaign_dispatch", b.campaignDispatch},
		{"window_sweep", b.windowSweep},
		{"e2e", b.e2e},
	}
	if b.scaleOnly != "" {
		named := strings.Split(b.scaleOnly, ",")
		scenarios = slices.DeleteFunc(scenarios, func(s scenario) bool {
			return !slices.Contains(named, s.name)
		})
	}
	template, err := b.scaleTemplate(ctx)
	if err != nil {
		return err
	}
	defer func() { recorded, b.template, metricPrefix = nil, "", "" }()
	ratios := map[string][]float64{}
	for round := 1; round <= max(b.scaleRounds, 1); round++ {
		for _, s := range scenarios {
			// In a fresh database and in a copy of the seeded one back to
			// back, so that the load of the moment weighs on both alike.
			base, scaled := map[string]float64{}, map[string]float64{}
			recorded, b.template, metricPrefix = base, "", ""
			if err := s.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			recorded, b.template, metricPrefix = scaled, template, "scale_"
			start := time.Now()
			if err := s.run(ctx); err != nil {
				return fmt.Errorf("scale %s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "callqueue-bench: scale %s took %s\n", s.name, time.Since(start).Round(time.Millisecond))
			metricPrefix = ""
			for _, name := range scaleFigures {
				if base[name] > 0 && scaled[name] > 0 {
					r := scaled[name] / base[name]
					ratios[name] = append(ratios[name], r)
					if b.scaleRounds > 1 {
						metric(fmt.Sprintf("scale_%s_vs_base_round%d", name, round), r, "ratio")
					}
				}
			}
		}
	}
	for _, name := range scaleFigures {
		if rs := ratios[name]; len(rs) > 0 {
			metric("scale_"+name+"_vs_base", median(rs), "ratio")
		}
	}
	return nil
}

// scaleFigures are the figures the scale scenario compares (target: a
// ratio of at most 1.5, e2e's at least 1/1.5).
var scaleFigures = []string{"admin_list_p99_ms", "dispatch_p99_ms", "campaign_dispatch_p99_ms", "campaign_dispatch_paced_p99_ms",
	"window_sweep_ms", "e2e_events_per_s"}

// median is the middle of xs (the mean of the two middle ones).
func median(xs []float64) float64 {
	sorted := slices.Sorted(slices.Values(xs))
	mid := len(sorted) / 2
	if len(sorted)%2 == 1 {
		return sorted[mid]
	}
	return (sorted[mid-1] + sorted[mid]) / 2
}

// scaleTemplate returns the template database of -scale-calls terminal
// calls, seeding it when there is none of that size.
func (b *bench) scaleTemplate(ctx context.Context) (string, error) {
	const name = "callqueue_bench_scale_template"
	conn, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		var seeded int64
		u, _ := worldURL(b.adminURL, name)
		if c, err := pgx.Connect(ctx, u); err == nil {
			_ = c.QueryRow(ctx, `SELECT calls FROM bench_scale_seed`).Scan(&seeded)
			c.Close(ctx)
		}
		if seeded == int64(b.scaleCalls) {
			fmt.Fprintf(os.Stderr, "callqueue-bench: scale: reusing %s (%d calls)\n", name, seeded)
			return name, migrateTemplate(ctx, u)
		}
	}
	start := time.Now()
	w, err := b.newWorld(ctx, "scale_template")
	if err != nil {
		return "", err
	}
	if _, err := w.start(ctx, "api", true, nil); err != nil { // migrates
		w.close()
		return "", err
	}
	err = seedScale(ctx, w, b.scaleCalls)
	w.keep = err == nil
	w.close()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "callqueue-bench: scale: seeded %d calls in %s\n", b.scaleCalls, time.Since(start).Round(time.Second))
	return w.dbName, nil
}

// migrateTemplate brings a template seeded by an older build up to the
// current schema once, rather than in every copy (an index over ten
// million calls takes a while to build).
func migrateTemplate(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool)
	if err != nil {
		return err
	}
	applied, err := m.Up(ctx)
	if len(applied) > 0 {
		fmt.Fprintf(os.Stderr, "callqueue-bench: scale: migrated the template: %v\n", applied)
	}
	return err
}

// seedScale fills the world's database: calls terminal calls of ten
// integrations of the owner "bench" created over the last year, each with
// one attempt and three history entries, the last week's dials in
// contact_dials, and 100,000 queued calls of an eleventh integration
// without a dialler. In chunks, so that no transaction is huge.
func seedScale(ctx context.Context, w *world, calls int) error {
	// A connection of its own: the service's pool bounds statements.
	pool, err := pgx.Connect(ctx, w.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close(ctx)
	if _, err := pool.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO integrations (id, name, slug, owner_id, webhook_token_enc)
		SELECT gen_random_uuid(), 'history ' || g, 'history-' || g, 'bench', '\x00' FROM generate_series(0, 10) AS g`); err != nil {
		return err
	}
	const chunk = 250_000
	for from := 0; from < calls; from += chunk {
		to := min(from+chunk, calls)
		step := time.Now()
		if _, err := pool.Exec(ctx, `
			WITH ids AS (SELECT array_agg(id ORDER BY slug) AS a FROM integrations WHERE slug LIKE 'history-%' AND slug <> 'history-0'),
			made AS (
				INSERT INTO calls (id, integration_id, phone_number, status, outcome, attempt, max_attempts, queued_at, created_at,
					updated_at, dial_state, duration_secs)
				SELECT gen_random_uuid(), ids.a[1 + g % 10], '+38050' || lpad((g % 5000000)::text, 7, '0'), s.status, s.outcome,
					1, 3, t, t, t + interval '2 minutes', 'accepted', CASE WHEN s.outcome = 'answered' THEN 42 END
				FROM generate_series($1::int, $2::int - 1) AS g, ids,
					LATERAL (SELECT now() - interval '365 days' * (($3::int - g)::float8 / $3::int) AS t) ts,
					LATERAL (SELECT (ARRAY['completed','completed','completed','failed','cancelled'])[1 + g % 5] AS status,
						(ARRAY['answered','answered','no_answer','dial_error','cancelled'])[1 + g % 5] AS outcome) s
				RETURNING id, integration_id, phone_number, status, outcome, created_at),
			attempts AS (
				INSERT INTO call_attempts (call_id, attempt, integration_id, external_call_id, started_at, ended_at, outcome, duration_secs)
				SELECT id, 1, integration_id, 'va-' || id, created_at, created_at + interval '2 minutes', outcome, 42 FROM made),
			dials AS (
				INSERT INTO contact_dials (phone_key, dialled_at, integration_id, owner_id, call_id, attempt)
				SELECT convert_to(phone_number, 'UTF8'), created_at, integration_id, 'bench', id, 1 FROM made
				WHERE created_at > now() - interval '7 days')
			INSERT INTO call_events (call_id, attempt, kind, from_status, to_status, detail, occurred_at)
			SELECT m.id, 1, e.kind, e.from_status, e.to_status, '{}', m.created_at + e.after FROM made m,
				LATERAL (VALUES ('queued', NULL, 'queued', interval '0'), ('dial', 'queued', 'initiated', interval '1 second'),
					('call_end', 'initiated', m.status, interval '2 minutes')) AS e (kind, from_status, to_status, after)`,
			from, to, calls); err != nil {
			return fmt.Errorf("seed calls %d–%d: %w", from, to, err)
		}
		fmt.Fprintf(os.Stderr, "callqueue-bench: scale: %d/%d calls (%s for the last chunk)\n", to, calls, time.Since(step).Round(time.Second))
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO calls (id, integration_id, phone_number, status, attempt, max_attempts, queued_at, created_at, updated_at)
		SELECT gen_random_uuid(), i.id, '+38067' || lpad(g::text, 7, '0'), 'queued', 0, 3, now(), now(), now()
		FROM generate_series(1, 100000) AS g, integrations i WHERE i.slug = 'history-0'`); err != nil {
		return fmt.Errorf("seed queued calls: %w", err)
	}
	for _, stmt := range []string{`CREATE TABLE bench_scale_seed (calls bigint NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_scale_seed VALUES (%d)`, calls)} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	// A database copied from this one starts with its statistics and
	// visibility map: as a deployment's would be after a year.
	if _, err := pool.Exec(ctx, `VACUUM (ANALYZE)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		return errors.Join(errors.New("vacuum"), err)
	}
	return nil
}
