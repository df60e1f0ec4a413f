package store_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/store"
)

// TestLaneReadsFollowTheirIndex: a claim reads a lane's first calls from an
// index in claim order — never sorting the whole lane, which at a million
// queued webhook calls made every claim of the integration take seconds.
func TestLaneReadsFollowTheirIndex(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	var calls []store.NewCall
	for i := range 500 {
		c := newCall(in.ID, t0)
		c.Priority = i % 3
		calls = append(calls, c)
	}
	insert(t, s, t0, calls...)
	if _, err := s.Pool().Exec(t.Context(), `ANALYZE calls`); err != nil {
		t.Fatal(err)
	}
	for _, lane := range []struct {
		name  string
		id    uuid.UUID
		index string
	}{
		{"webhook lane", uuid.Nil, "calls_ready_webhooks"},
		{"campaign lane", uuid.New(), "calls_ready"},
	} {
		plan, err := store.ExplainLaneQuery(t.Context(), s, lane.id, in.ID, "owner", t0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(plan, "Sort") || !strings.Contains(plan, " "+lane.index+" ") {
			t.Errorf("%s: want a read of %s in order, no sort; plan:\n%s", lane.name, lane.index, plan)
		}
	}
}
