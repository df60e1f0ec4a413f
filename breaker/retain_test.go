package breaker_test

import (
	"testing"

	"github.com/callqueue/callqueue/breaker"
)

func TestRetainDropsForgottenKeys(t *testing.T) {
	t.Parallel()
	s := breaker.NewSet[int](breaker.Settings{Peer: "test"})
	for _, k := range []string{"a", "b", "c"} {
		_, _ = s.Execute(k, func() (int, error) { return 1, nil })
	}
	if dropped := s.Retain(func(k string) bool { return k == "b" }); dropped != 2 || s.Len() != 1 {
		t.Fatalf("Retain dropped %d, %d left; want 2 and 1", dropped, s.Len())
	}
}
