package metrics

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"
)

// PerIntegration says which integrations get series of their own
// (CALLQUEUE_METRICS_PER_INTEGRATION). A label per tenant on every series is
// the classic cardinality trap: at 10,000 integrations it made a quarter of
// a million series per process. Whatever the mode, the global series (no
// integration_id) count everything.
type PerIntegration string

const (
	// PerIntegrationTop labels the N most active integrations of the last
	// hour and sums the rest under integration_id="other".
	PerIntegrationTop PerIntegration = "top"
	// PerIntegrationNone sums every integration under "other".
	PerIntegrationNone PerIntegration = "none"
	// PerIntegrationAll labels every integration: series grow with them.
	PerIntegrationAll PerIntegration = "all"
)

// Defaults and bounds of the per-integration options.
const (
	PerIntegrationDefault  = PerIntegrationTop
	TopIntegrationsDefault = 100
	TopIntegrationsMax     = 10_000
	// Other is the integration_id under which the integrations without
	// series of their own are summed.
	Other = "other"
	// RankEvery is how often the labelled integrations are chosen again.
	RankEvery = time.Minute
)

// Activity is counted in buckets so that the last hour slides.
const (
	activityBucket  = 10 * time.Minute
	activityBuckets = 6
	// failureWeight makes a failure count as that many events, so an
	// integration that fails often is labelled even when quieter than
	// the busiest: its failures are what an operator looks for.
	failureWeight = 10
)

// Options choose the per-integration series.
type Options struct {
	PerIntegration PerIntegration
	// TopIntegrations is N in the top mode (0: TopIntegrationsDefault).
	TopIntegrations int
	// Now is the clock activity is counted on (nil: time.Now).
	Now func() time.Time
}

// Validate names the setting that is out of range.
func (o Options) Validate() error {
	switch cmp.Or(o.PerIntegration, PerIntegrationDefault) {
	case PerIntegrationTop, PerIntegrationNone, PerIntegrationAll:
	default:
		return fmt.Errorf("CALLQUEUE_METRICS_PER_INTEGRATION must be none, top or all, got %q", o.PerIntegration)
	}
	if o.TopIntegrations < 0 || o.TopIntegrations > TopIntegrationsMax {
		return fmt.Errorf("CALLQUEUE_METRICS_TOP_INTEGRATIONS must be between 1 and %d", TopIntegrationsMax)
	}
	return nil
}

// tenants decides, per integration, the integration_id its series carry:
// its own id or Other. In the top mode it counts each integration's
// activity over the last hour; an active integration takes a free slot at
// once, and every RankEvery the N with the highest scores keep or take the
// slots while the rest (and the idle) give theirs up.
type tenants struct {
	mode PerIntegration
	top  int
	now  func() time.Time

	mu       sync.Mutex
	activity map[string]*activity
	labelled map[string]bool
}

type activity struct {
	// counts[i] is the score of the bucket that started at epochs[i].
	counts [activityBuckets]int
	epochs [activityBuckets]int64
}

func newTenants(o Options) *tenants {
	t := &tenants{mode: cmp.Or(o.PerIntegration, PerIntegrationDefault), top: cmp.Or(o.TopIntegrations, TopIntegrationsDefault),
		now: o.Now, activity: map[string]*activity{}, labelled: map[string]bool{}}
	if t.now == nil {
		t.now = time.Now
	}
	if t.mode == PerIntegrationAll {
		t.top = math.MaxInt // every integration takes a slot, none is ranked out
	}
	return t
}

// observe counts one event of id (a failure weighs more) and returns the
// integration_id its series carry.
func (t *tenants) observe(id string, failed bool) string {
	if t.mode == PerIntegrationNone {
		return Other
	}
	weight := 1
	if failed {
		weight = failureWeight
	}
	epoch := t.now().UnixNano() / int64(activityBucket)
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.activity[id]
	if a == nil {
		a = &activity{}
		t.activity[id] = a
	}
	i := epoch % activityBuckets
	if a.epochs[i] != epoch {
		a.epochs[i], a.counts[i] = epoch, 0
	}
	a.counts[i] += weight
	if !t.labelled[id] && len(t.labelled) < t.top {
		t.labelled[id] = true
	}
	if t.labelled[id] {
		return id
	}
	return Other
}

// label returns the integration_id of id's sampled series without counting
// activity. A free slot is taken, so that with no more than N integrations
// in all every one has its own series from the start.
func (t *tenants) label(id string) string {
	if t.mode == PerIntegrationNone {
		return Other
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.labelled[id] && len(t.labelled) < t.top {
		t.labelled[id] = true
	}
	if t.labelled[id] {
		return id
	}
	return Other
}

// isLabelled reports whether id's series may exist.
func (t *tenants) isLabelled(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.labelled[id]
}

// rank chooses the labelled integrations again: the N highest scores of the
// last hour, ties broken by id so that replicas with the same counts choose
// the same. Slots left over stay with the idle integrations that hold them,
// so a small deployment keeps every series. It returns the integrations
// that lost their label.
func (t *tenants) rank() (dropped []string) {
	if t.mode != PerIntegrationTop {
		return nil
	}
	oldest := t.now().UnixNano()/int64(activityBucket) - activityBuckets + 1
	t.mu.Lock()
	defer t.mu.Unlock()
	type scored struct {
		id    string
		score int
	}
	active := make([]scored, 0, len(t.activity))
	for id, a := range t.activity {
		s := 0
		for i, e := range a.epochs {
			if e >= oldest {
				s += a.counts[i]
			}
		}
		if s == 0 {
			delete(t.activity, id) // idle for an hour
			continue
		}
		active = append(active, scored{id, s})
	}
	slices.SortFunc(active, func(a, b scored) int { return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id)) })
	keep := make(map[string]bool, t.top)
	for _, s := range active[:min(len(active), t.top)] {
		keep[s.id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(t.labelled)) {
		switch {
		case keep[id]:
		case len(keep) < t.top:
			keep[id] = true
		default:
			dropped = append(dropped, id)
		}
	}
	t.labelled = keep
	return dropped
}

// retain forgets the activity and label of every integration keep refuses.
func (t *tenants) retain(keep func(id string) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	maps.DeleteFunc(t.activity, func(id string, _ *activity) bool { return !keep(id) })
	maps.DeleteFunc(t.labelled, func(id string, _ bool) bool { return !keep(id) })
}

// count returns how many integrations have series of their own.
func (t *tenants) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.labelled)
}
