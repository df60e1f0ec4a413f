package admin_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callqueue/callqueue/store"
)

type seriesJSON struct {
	Step   string        `json:"step"`
	Points []store.Point `json:"points"`
}

// drawn is what a chart's uPlot holds: its x values (seconds) and series.
type drawn struct {
	X      []float64   `json:"x"`
	Series [][]float64 `json:"series"`
	Labels []string    `json:"labels"`
	// Painted counts the canvas pixels in the first series' colour.
	Painted int `json:"painted"`
}

const drawnJS = `((id) => {
	const u = document.getElementById(id).uplot;
	const c = u.ctx, w = c.canvas.width, hgt = c.canvas.height, px = c.getImageData(0, 0, w, hgt).data;
	const rgb = u.series[1]._stroke || u.series[1].stroke();
	const want = [1, 3, 5].map((i) => parseInt(String(rgb).slice(i, i + 2), 16));
	let painted = 0;
	for (let i = 0; i < px.length; i += 4) if (px[i] === want[0] && px[i + 1] === want[1] && px[i + 2] === want[2]) painted++;
	return {x: u.data[0], series: u.data.slice(1), labels: u.series.slice(1).map((s) => s.label), painted};
})`

// TestConsoleCharts: the integration's calls tab draws the timeseries API's
// points (live calls against the limit, dials by outcome, the queue), keeps
// them current without a reload as calls end, and fits a phone; a
// campaign's page draws its progress.
func TestConsoleCharts(t *testing.T) {
	t.Parallel()
	c := setup(t)
	in := c.admin.CreateIntegration("Charts", c.va, map[string]any{"concurrency_limit": 2})
	for i := range 3 {
		originate(t, c, in, fmt.Sprintf("+38099333000%d", i))
	}
	series := func(path string) seriesJSON {
		var s seriesJSON
		if code := c.admin.Do("GET", path, nil, &s); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		return s
	}
	path := "/api/integrations/" + in.ID.String() + "/timeseries"
	var api seriesJSON
	waitSeries := func(what string, cond func(last store.Point) bool) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for api = series(path); !cond(api.Points[len(api.Points)-1]); api = series(path) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, api.Points[len(api.Points)-1])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitSeries("two live calls and one queued", func(p store.Point) bool { return p.Active == 2 && p.Queued == 1 })

	b := c.b
	b.open("/admin/integrations/" + in.ID.String() + "?tab=calls")
	b.signIn(c.admin.Token)
	b.run("mark the page", chromedp.Evaluate(`window.notReloaded = true`, nil))
	b.until("the charts drawn", `['chart-active', 'chart-dials', 'chart-queue'].every((id) => document.getElementById(id)?.uplot)`)
	b.until("two live in the chart", `document.getElementById('chart-active').uplot.data[1].at(-1) === 2`)

	// The chart holds the API's points: one per minute of the last hour.
	var active, dials, queue drawn
	b.eval(drawnJS+`('chart-active')`, &active)
	b.eval(drawnJS+`('chart-dials')`, &dials)
	b.eval(drawnJS+`('chart-queue')`, &queue)
	if len(active.X) != len(api.Points) || len(api.Points) != 60 {
		t.Fatalf("the chart has %d points, the API %d", len(active.X), len(api.Points))
	}
	dialsTotal := 0.0
	for i, p := range api.Points {
		if active.X[i] != float64(p.T.Unix()) || active.Series[0][i] != float64(p.Active) || queue.Series[0][i] != float64(p.Queued) ||
			dials.Series[0][i] != float64(p.Dials) {
			t.Fatalf("point %d: chart x=%v live=%v queued=%v dials=%v, API %+v", i, active.X[i], active.Series[0][i], queue.Series[0][i], dials.Series[0][i], p)
		}
		dialsTotal += dials.Series[0][i]
	}
	if active.Labels[1] != "limit" || active.Series[1][59] != 2 || dialsTotal != 2 {
		t.Fatalf("live chart %v with %v; %v dials drawn", active.Labels, active.Series[1][59], dialsTotal)
	}
	if active.Painted == 0 || dials.Painted == 0 || queue.Painted == 0 {
		t.Fatalf("pixels in the series' colour: live %d, dials %d, queue %d", active.Painted, dials.Painted, queue.Painted)
	}
	// The VA ends every call; the freed slot dials the queued one.
	ended := map[string]bool{}
	for len(ended) < 3 {
		o := c.va.Next(t, waitFor)
		if !ended[o.CallID] {
			endCall(t, c, in, o.CallID)
			ended[o.CallID] = true
		}
	}
	b.until("the chart current without a reload", `window.notReloaded && (() => {
		const a = document.getElementById('chart-active').uplot, q = document.getElementById('chart-queue').uplot,
			d = document.getElementById('chart-dials').uplot;
		return a.data[1].at(-1) === 0 && q.data[1].at(-1) === 0 && d.series.some((s) => s.label === 'answered' || s.label === 'completed') &&
			d.data[1].reduce((x, y) => x + y, 0) === 3;
	})()`)

	// The picture in docs/console.md.
	if dir := os.Getenv("CALLQUEUE_SCREENSHOT_DIR"); dir != "" {
		var png []byte
		b.run("screenshot", chromedp.EmulateViewport(1100, 900), chromedp.Evaluate(`document.getElementById('status').hidden = true;
			window.scrollTo(0, document.querySelector('.charts').offsetTop - 10)`, nil), chromedp.Sleep(300*time.Millisecond),
			chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile(filepath.Join(dir, "console-charts.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// On a phone's width the charts fit: nothing scrolls sideways.
	b.run("phone viewport", chromedp.EmulateViewport(390, 844))
	b.until("the charts as wide as the phone", `document.getElementById('chart-dials').uplot.width <= 390`)
	var widths struct{ Page, View, Chart int }
	b.eval(`({Page: document.documentElement.scrollWidth, View: window.innerWidth,
		Chart: Math.ceil(document.querySelector('#chart-dials .uplot').getBoundingClientRect().right)})`, &widths)
	if widths.Page > widths.View || widths.Chart > widths.View {
		var wide []string
		b.eval(`[...document.querySelectorAll('body *')].filter((e) => { if (e.getBoundingClientRect().right <= window.innerWidth) return false; for (let p = e.parentElement; p; p = p.parentElement) if (getComputedStyle(p).overflowX !== 'visible') return false; return true; }).slice(0, 8).map((e) => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))`, &wide)
		t.Logf("wider than the phone: %q", wide)
		t.Fatalf("on a phone: page %dpx, chart ends at %dpx, viewport %dpx", widths.Page, widths.Chart, widths.View)
	}

	// A campaign's page: its live calls, dials and progress.
	var camp campaignJSON
	if code := c.admin.Do("POST", "/api/integrations/"+in.ID.String()+"/campaigns",
		map[string]any{"name": "Charted", "recipients": []map[string]any{{"phoneNumber": "+380993331000"}}}, &camp); code != http.StatusCreated {
		t.Fatalf("create campaign: %d", code)
	}
	b.open("/admin/campaigns/" + camp.ID.String())
	b.until("the campaign's charts", `document.getElementById('chart-queue')?.uplot && document.querySelector('.charts[data-source="campaign"]')`)
	campSeries := series("/api/campaigns/" + camp.ID.String() + "/timeseries")
	var progress drawn
	b.eval(drawnJS+`('chart-queue')`, &progress)
	if len(progress.X) != len(campSeries.Points) || progress.Labels[0] != "dials ended" || progress.Labels[1] != "still to dial" {
		t.Fatalf("campaign progress chart %d points %v, API %d points", len(progress.X), progress.Labels, len(campSeries.Points))
	}
}
