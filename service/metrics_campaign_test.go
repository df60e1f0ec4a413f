package service_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestCampaignGauges: /metrics has a campaign's queued, active and done
// calls while it is running or paused, and none once it is over, so the
// series are as many as the campaigns being dialled.
func TestCampaignGauges(t *testing.T) {
	t.Parallel()
	env := servicetest.New(t)
	api := env.Start(servicetest.Options{Role: "api"}) // no workers: nothing is dialled
	owner := "owner-" + t.Name()
	admin := env.Admin(api, owner)
	in := admin.CreateIntegration("Gauges", servicetest.NewFakeVA(t), map[string]any{"concurrency_limit": 2})

	create := func(name string, phones ...string) store.Campaign {
		var list []map[string]any
		for _, p := range phones {
			list = append(list, map[string]any{"phoneNumber": p})
		}
		var c store.Campaign
		if code := admin.Do("POST", "/api/integrations/"+in.ID.String()+"/campaigns",
			map[string]any{"name": name, "recipients": list}, &c); code != http.StatusCreated {
			t.Fatalf("create %s: %d", name, code)
		}
		return c
	}
	running := create("Running", "+380991000001", "+380991000002", "+380991000003")
	paused := create("Paused", "+380991000011")
	over := create("Cancelled", "+380991000021")
	for action, c := range map[string]store.Campaign{"pause": paused, "cancel": over} {
		if code := admin.Do("POST", "/api/campaigns/"+c.ID.String()+"/"+action, nil, nil); code != http.StatusOK {
			t.Fatalf("%s: %d", action, code)
		}
	}
	// One of the running campaign's calls is over.
	var first string
	if err := env.Store.Pool().QueryRow(t.Context(), `SELECT id FROM calls WHERE campaign_id = $1 ORDER BY created_at LIMIT 1`,
		running.ID).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if code := admin.Do("POST", "/api/calls/"+first+"/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel call: %d", code)
	}

	series := func(name, help string, values map[uuid.UUID]int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for c, v := range values {
			fmt.Fprintf(&b, "%s{campaign_id=%q,integration_id=%q} %d\n", name, c, in.ID, v)
		}
		return b.String()
	}
	const (
		queuedHelp = "A campaign's calls waiting for a slot or a calling window."
		activeHelp = "A campaign's calls holding a concurrency slot."
		doneHelp   = "A running or paused campaign's calls that are over (completed, failed or cancelled)."
	)
	want := series("callqueue_campaign_queued_calls", queuedHelp, map[uuid.UUID]int{running.ID: 2, paused.ID: 1}) +
		series("callqueue_campaign_active_calls", activeHelp, map[uuid.UUID]int{running.ID: 0, paused.ID: 0}) +
		series("callqueue_campaign_done_calls", doneHelp, map[uuid.UUID]int{running.ID: 1, paused.ID: 0})
	if err := testutil.GatherAndCompare(api.Metrics.Registry, strings.NewReader(want), "callqueue_campaign_queued_calls",
		"callqueue_campaign_active_calls", "callqueue_campaign_done_calls"); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(api.Metrics.Registry, strings.NewReader(`
# HELP callqueue_queued_calls Calls waiting for a slot or a calling window.
# TYPE callqueue_queued_calls gauge
callqueue_queued_calls{integration_id="`+in.ID.String()+`",slug="`+in.Slug+`"} 3
`), "callqueue_queued_calls"); err != nil {
		t.Fatal(err)
	}

	// Cancelled, the running campaign's series are gone from the next scrape.
	if code := admin.Do("POST", "/api/campaigns/"+running.ID.String()+"/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	want = series("callqueue_campaign_queued_calls", queuedHelp, map[uuid.UUID]int{paused.ID: 1}) +
		series("callqueue_campaign_done_calls", doneHelp, map[uuid.UUID]int{paused.ID: 0})
	if err := testutil.GatherAndCompare(api.Metrics.Registry, strings.NewReader(want), "callqueue_campaign_queued_calls",
		"callqueue_campaign_done_calls"); err != nil {
		t.Fatal(err)
	}
}
