package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

type timeseriesView struct {
	Step   string        `json:"step"`
	Points []store.Point `json:"points"`
}

// TestTimeseries: by default the last hour by minute, ending with the
// minute under way, which shows the live call and the queue as they are;
// another owner's integration or campaign is a 404.
func TestTimeseries(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := activeIntegration(t, w.a, w.va, "Pictures", map[string]any{"concurrency_limit": 1})
	live := w.originate(t, w.a, in, "+380501112233")
	w.originate(t, w.a, in, "+380501112234")
	waitCallStatus(t, w.a, live, "initiated")

	path := integrationPath(in, "/timeseries")
	var ts timeseriesView
	servicetest.Eventually(t, waitFor, "the last point to show one live call and one queued", func() bool {
		ts = decodeAs[timeseriesView](t, w.a.do(t, "GET", path, nil).expect(t, http.StatusOK))
		last := ts.Points[len(ts.Points)-1]
		return last.Active == 1 && last.Queued == 1
	})
	dials := 0
	for _, p := range ts.Points {
		dials += p.Dials
	}
	if ts.Step != "1m" || len(ts.Points) != 60 || dials != 1 || ts.Points[59].T.Sub(ts.Points[0].T) != 59*time.Minute {
		t.Fatalf("default timeseries: step %s, %d points, %d dials, last at %s", ts.Step, len(ts.Points), dials, ts.Points[len(ts.Points)-1].T)
	}

	camp := decodeAs[store.Campaign](t, w.a.do(t, "POST", integrationPath(in, "/campaigns"), map[string]any{"name": "Spring"}).
		expect(t, http.StatusCreated))
	campPath := "/api/campaigns/" + camp.ID.String() + "/timeseries"
	// The service's clock is the test's: the window ends before its now.
	from := ts.Points[0].T.Add(-3 * time.Hour).Truncate(time.Hour)
	q := url.Values{"from": {from.Format(time.RFC3339)}, "to": {from.Add(2 * time.Hour).Format(time.RFC3339)}, "step": {"15m"}}
	ts = decodeAs[timeseriesView](t, w.a.do(t, "GET", campPath+"?"+q.Encode(), nil).expect(t, http.StatusOK))
	if ts.Step != "15m" || len(ts.Points) != 8 || !ts.Points[1].T.Equal(from.Add(15*time.Minute)) {
		t.Fatalf("campaign timeseries by 15m: %+v", ts)
	}
	q = url.Values{"from": {"2000-01-01T00:00:00Z"}, "to": {"2001-01-01T00:00:00Z"}}
	if ts = decodeAs[timeseriesView](t, w.a.do(t, "GET", campPath+"?"+q.Encode(), nil).expect(t, http.StatusOK)); ts.Step != "1d" {
		t.Fatalf("a leap year without a step is answered by %s, want 1d (by 6h it is 1,464 points)", ts.Step)
	}

	for _, p := range []string{path, campPath} {
		expectError(t, w.b.do(t, "GET", p, nil), http.StatusNotFound)
	}
	expectError(t, w.a.do(t, "GET", "/api/integrations/not-an-id/timeseries", nil), http.StatusNotFound)

	for _, tc := range []struct{ query, field string }{
		{"step=1x", "step"},
		{"step=0m", "step"},
		{"step=99999999d", "step"},
		{"from=yesterday", "from"},
		{"to=2026-13-01T00:00:00Z", "to"},
		{"from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"},
		{"from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:01Z&step=1m", "step"},
		{"from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"},
	} {
		for _, p := range []string{path, campPath} {
			expectFieldError(t, w.a.do(t, "GET", p+"?"+tc.query, nil), http.StatusBadRequest, tc.field)
		}
	}
}

// timeseriesCases are the queries a timeseries refuses, for routeTable.
func timeseriesCases() []bodyCase {
	return []bodyCase{
		{name: "step", query: "step=1x", field: "step"},
		{name: "from", query: "from=yesterday", field: "from"},
		{name: "too many points", query: "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:01Z&step=1m", field: "step"},
	}
}
