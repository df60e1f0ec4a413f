package api

import (
	"cmp"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// MaxTimeseriesPoints bounds a timeseries answer (contract §10).
const MaxTimeseriesPoints = 1440

// timeseries is the answer of GET …/timeseries.
type timeseries struct {
	Step   string        `json:"step"`
	Points []store.Point `json:"points"`
}

// defaultSteps are the steps tried, finest first, when none is asked for.
var defaultSteps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour}

var stepPattern = regexp.MustCompile(`^([1-9][0-9]{0,4})([smhd])$`)

var stepUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}

// formatStep writes a step in its largest whole unit ("90s", "5m", "1d").
func formatStep(d time.Duration) string {
	for _, u := range []string{"d", "h", "m"} {
		if d%stepUnits[u] == 0 {
			return strconv.FormatInt(int64(d/stepUnits[u]), 10) + u
		}
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// timeseriesWindow reads from, to and step. Without them the answer is the
// last hour by minute, its last point the minute under way; without a step,
// the finest of defaultSteps that keeps the answer within
// MaxTimeseriesPoints.
func timeseriesWindow(r *http.Request, now time.Time) (store.Window, error) {
	q := r.URL.Query()
	var step time.Duration
	if v := q.Get("step"); v != "" {
		m := stepPattern.FindStringSubmatch(v)
		if m == nil {
			return store.Window{}, jsonhttp.BadRequest("step", "step must be a whole number of s, m, h or d, such as 1m")
		}
		n, _ := strconv.Atoi(m[1])
		step = time.Duration(n) * stepUnits[m[2]]
	}
	times := map[string]time.Time{}
	for _, name := range []string{"from", "to"} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return store.Window{}, jsonhttp.BadRequest(name, "%s must be an RFC 3339 time", name)
			}
			times[name] = t
		}
	}
	from, hasFrom := times["from"]
	to, hasTo := times["to"]
	switch {
	case !hasFrom && !hasTo:
		s := cmp.Or(step, time.Minute)
		to = now.Truncate(s).Add(s)
		from = to.Add(-time.Hour)
		if s > time.Hour {
			from = to.Add(-s)
		}
	case !hasTo:
		to = now
	case !hasFrom:
		from = to.Add(-time.Hour)
	}
	if !to.After(from) {
		return store.Window{}, jsonhttp.BadRequest("to", "to must be after from")
	}
	span := to.Sub(from)
	if step == 0 {
		for _, s := range defaultSteps {
			if step = s; buckets(span, s) <= MaxTimeseriesPoints {
				break
			}
		}
	}
	n := buckets(span, step)
	if n > MaxTimeseriesPoints {
		field := "step"
		if q.Get("step") == "" {
			field = "from"
		}
		return store.Window{}, jsonhttp.BadRequest(field, "from to to at a step of %s is %d points; at most %d", formatStep(step), n, MaxTimeseriesPoints)
	}
	return store.Window{From: from, Step: step, Points: int(n), Now: now}, nil
}

// buckets is how many steps cover span, the last one maybe in part.
func buckets(span, step time.Duration) int64 {
	n := int64(span / step)
	if span%step != 0 {
		n++
	}
	return n
}

func (a *API) integrationTimeseries(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	win, err := timeseriesWindow(r, a.now())
	if err != nil {
		return err
	}
	points, err := a.store.IntegrationTimeseries(r.Context(), in.ID, win)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, timeseries{Step: formatStep(win.Step), Points: points})
	return nil
}

func (a *API) campaignTimeseries(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	c, err := a.store.GetCampaign(r.Context(), owner(r.Context()), id)
	if err != nil {
		return err
	}
	win, err := timeseriesWindow(r, a.now())
	if err != nil {
		return err
	}
	points, err := a.store.CampaignTimeseries(r.Context(), c.ID, win)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, timeseries{Step: formatStep(win.Step), Points: points})
	return nil
}
