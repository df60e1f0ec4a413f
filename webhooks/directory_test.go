package webhooks

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// Anonymous requests name slugs: a flood of made-up ones must neither grow
// the cache without bound nor, for slugs that cannot exist, cost a query.
func TestDirectoryStaysBoundedUnderASlugFlood(t *testing.T) {
	t.Parallel()
	st, _ := storetest.NewStore(t)
	name := "Known"
	in, err := st.CreateIntegration(t.Context(), "owner-dir", store.ActorCLI, store.IntegrationFields{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(st, 0)
	d.max = 50

	for _, slug := range []string{strings.Repeat("a", 1<<20), "UPPER", "-dash", "dots.and", "a/b", ""} {
		if _, err := d.Lookup(t.Context(), slug); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Lookup(%.20q) = %v, want ErrNotFound", slug, err)
		}
	}
	if d.Len() != 0 {
		t.Fatalf("%d entries cached for slugs that cannot exist", d.Len())
	}
	for i := range 500 {
		if _, err := d.Lookup(t.Context(), fmt.Sprintf("made-up-%d", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Lookup(made-up-%d) = %v", i, err)
		}
	}
	if d.Len() > d.max {
		t.Fatalf("%d entries cached, bound %d", d.Len(), d.max)
	}
	got, err := d.Lookup(t.Context(), in.Slug)
	if err != nil || got.ID != in.ID {
		t.Fatalf("Lookup(%s) = %+v, %v", in.Slug, got, err)
	}
	d.Forget(in.Slug)
	if _, ok := d.entries[in.Slug]; ok {
		t.Fatal("Forget kept the entry")
	}
}
