package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// StatusAge is how many of an integration's calls are in a non-terminal
// status, and how long the oldest has been in it.
type StatusAge struct {
	IntegrationID, Status string
	Calls                 int
	OldestSeconds         float64
}

// RegisterCallAges exports the calls in each non-terminal status and the age
// of the oldest, so a call stuck in a status (waiting_postcall for an hour)
// is visible without looking for it. Integrations without series of their
// own are summed under integration_id="other" (the oldest of theirs).
func (m *Metrics) RegisterCallAges(src func(context.Context) ([]StatusAge, error)) {
	labels := []string{"integration_id", "status"}
	var (
		calls  = prometheus.NewDesc("callqueue_calls", "Calls in a non-terminal status.", labels, nil)
		oldest = prometheus.NewDesc("callqueue_calls_oldest_age_seconds", "How long the oldest call in a status has been in it.", labels, nil)
	)
	read := Cached(0, src)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{calls, oldest},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			rows, err := read(ctx)
			if err != nil {
				return
			}
			others := map[string]*StatusAge{}
			var statuses []string
			for _, r := range rows {
				if m.tenants.label(r.IntegrationID) != Other {
					ch <- gauge(calls, float64(r.Calls), r.IntegrationID, r.Status)
					ch <- gauge(oldest, r.OldestSeconds, r.IntegrationID, r.Status)
					continue
				}
				o := others[r.Status]
				if o == nil {
					o = &StatusAge{IntegrationID: Other, Status: r.Status}
					others[r.Status] = o
					statuses = append(statuses, r.Status)
				}
				o.Calls += r.Calls
				o.OldestSeconds = max(o.OldestSeconds, r.OldestSeconds)
			}
			for _, status := range statuses {
				o := others[status]
				ch <- gauge(calls, float64(o.Calls), Other, status)
				ch <- gauge(oldest, o.OldestSeconds, Other, status)
			}
		},
	})
}

// Outbox is the CRM outbox's undelivered updates.
type Outbox struct {
	Pending, Failed int
	// NoRecord counts updates kept because the CRM has no record for them.
	NoRecord int
	// OldestPendingSeconds is the age of the oldest pending update, 0 when
	// none is pending.
	OldestPendingSeconds float64
}

// RegisterOutbox exports the CRM outbox's pending and failed updates and the
// age of the oldest pending one: a growing age means deliveries stall.
func (m *Metrics) RegisterOutbox(src func(context.Context) (Outbox, error)) {
	var (
		updates = prometheus.NewDesc("callqueue_crm_outbox", "CRM updates not delivered, by status (pending, failed, no_record).", []string{"status"}, nil)
		oldest  = prometheus.NewDesc("callqueue_crm_outbox_oldest_pending_age_seconds", "Age of the oldest pending CRM update (0 when none).", nil, nil)
	)
	read := Cached(0, src)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{updates, oldest},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			o, err := read(ctx)
			if err != nil {
				return
			}
			ch <- gauge(updates, float64(o.Pending), "pending")
			ch <- gauge(updates, float64(o.Failed), "failed")
			ch <- gauge(updates, float64(o.NoRecord), "no_record")
			ch <- gauge(oldest, o.OldestPendingSeconds)
		},
	})
}

// Analyses is the LLM analyses waiting to amend finished calls.
type Analyses struct {
	Pending int
	// OldestPendingSeconds is the age of the oldest waiting analysis, 0
	// when none waits.
	OldestPendingSeconds float64
}

// RegisterAnalyses exports the LLM analyses waiting and the age of the
// oldest: their calls' CRM updates wait for them, so a growing age means a
// slow or failing LLM is holding CRM updates back.
func (m *Metrics) RegisterAnalyses(src func(context.Context) (Analyses, error)) {
	var (
		pending = prometheus.NewDesc("callqueue_analyses_pending", "LLM analyses waiting to amend finished calls.", nil, nil)
		oldest  = prometheus.NewDesc("callqueue_analyses_oldest_pending_age_seconds", "Age of the oldest waiting LLM analysis (0 when none).", nil, nil)
	)
	read := Cached(0, src)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{pending, oldest},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			a, err := read(ctx)
			if err != nil {
				return
			}
			ch <- gauge(pending, float64(a.Pending))
			ch <- gauge(oldest, a.OldestPendingSeconds)
		},
	})
}

// RegisterDependencies exports whether each dependency (postgres, jetstream)
// answers a ping at scrape time: the readiness check, as a series.
func (m *Metrics) RegisterDependencies(pings map[string]func(context.Context) error) {
	up := prometheus.NewDesc("callqueue_dependency_up", "1 when a dependency answered a ping during the scrape, else 0.", []string{"dependency"}, nil)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{up},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			for name, ping := range pings {
				v := 1.0
				if ping(ctx) != nil {
					v = 0
				}
				ch <- gauge(up, v, name)
			}
		},
	})
}
