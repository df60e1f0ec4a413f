package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// Live is one row of live calls: an integration's, or (CampaignID set) one
// campaign's share of it.
type Live struct {
	IntegrationID, Slug string
	CampaignID          string
	Active, Queued      int
	// Done counts a campaign's finished calls (rows with a CampaignID).
	Done int
	// Limit is the integration's concurrency limit (rows of one integration
	// carry the same).
	Limit int
}

// BreakerStates reports a breaker set's state for a key (an integration id),
// as breaker.Set.State does.
type BreakerStates func(key string) float64

// RegisterIntegrations exports, per integration, its live and queued calls
// against its limit and the state of each of its peers' breakers, read at
// scrape time. An integration with series of its own (see tenants) is
// reported from the start (a closed breaker is 0), not only once something
// changed; the others are summed under integration_id="other", with their
// breakers' worst state. Rows with a CampaignID are also exported per
// campaign of an integration with series of its own; the source decides
// which campaigns have rows (those being dialled), and a campaign it stops
// reporting has no series from the next scrape on. callqueue_breakers_open
// counts the open breakers of every integration.
func (m *Metrics) RegisterIntegrations(src func(context.Context) ([]Live, error), breakers map[string]BreakerStates) {
	labels := []string{"integration_id", "slug"}
	campaign := []string{"integration_id", "campaign_id"}
	var (
		active         = prometheus.NewDesc("callqueue_active_calls", "Calls holding a concurrency slot (initiated, in progress, or cancelled while still live).", labels, nil)
		queued         = prometheus.NewDesc("callqueue_queued_calls", "Calls waiting for a slot or a calling window.", labels, nil)
		limit          = prometheus.NewDesc("callqueue_concurrency_limit", "Configured concurrency limit.", labels, nil)
		campaignActive = prometheus.NewDesc("callqueue_campaign_active_calls", "A campaign's calls holding a concurrency slot.", campaign, nil)
		campaignQueued = prometheus.NewDesc("callqueue_campaign_queued_calls", "A campaign's calls waiting for a slot or a calling window.", campaign, nil)
		campaignDone   = prometheus.NewDesc("callqueue_campaign_done_calls",
			"A running or paused campaign's calls that are over (completed, failed or cancelled).", campaign, nil)
		breakerState = prometheus.NewDesc("callqueue_breaker_state",
			"Circuit breaker state per integration and peer (va, crm, llm) in this process: 0 closed, 1 half-open, 2 open.",
			[]string{"integration_id", "peer"}, nil)
		breakersOpen = prometheus.NewDesc("callqueue_breakers_open",
			"Integrations whose breaker for a peer (va, crm, llm) is open in this process.", []string{"peer"}, nil)
	)
	read := Cached(0, src)
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{active, queued, limit, campaignActive, campaignQueued, campaignDone, breakerState, breakersOpen},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			rows, err := read(ctx)
			if err != nil {
				return
			}
			type total struct {
				slug                  string
				active, queued, limit int
				breakers              map[string]float64
			}
			totals := map[string]*total{}
			open := map[string]int{}
			var order []string
			for i, r := range rows {
				label := m.tenants.label(r.IntegrationID)
				t := totals[label]
				if t == nil {
					t = &total{slug: r.Slug, breakers: map[string]float64{}}
					if label == Other {
						t.slug = Other
					}
					totals[label] = t
					order = append(order, label)
				}
				t.active += r.Active
				t.queued += r.Queued
				if i == 0 || rows[i-1].IntegrationID != r.IntegrationID {
					// An integration's rows are adjacent and carry the
					// same limit and breakers: counted once.
					t.limit += r.Limit
					for peer, state := range breakers {
						s := state(r.IntegrationID)
						t.breakers[peer] = max(t.breakers[peer], s)
						if s == breakerOpen {
							open[peer]++
						}
					}
				}
				if r.CampaignID != "" && label != Other {
					ch <- gauge(campaignActive, float64(r.Active), r.IntegrationID, r.CampaignID)
					ch <- gauge(campaignQueued, float64(r.Queued), r.IntegrationID, r.CampaignID)
					ch <- gauge(campaignDone, float64(r.Done), r.IntegrationID, r.CampaignID)
				}
			}
			for _, id := range order {
				t := totals[id]
				ch <- gauge(active, float64(t.active), id, t.slug)
				ch <- gauge(queued, float64(t.queued), id, t.slug)
				ch <- gauge(limit, float64(t.limit), id, t.slug)
				for peer, state := range t.breakers {
					ch <- gauge(breakerState, state, id, peer)
				}
			}
			for peer := range breakers {
				ch <- gauge(breakersOpen, float64(open[peer]), peer)
			}
		},
	})
}

// breakerOpen is an open breaker's BreakerStates value.
const breakerOpen = 2
