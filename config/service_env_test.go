package config_test

import (
	"testing"

	"github.com/callqueue/callqueue/config"
)

// TestUnverifiedBodyBytesFromEnv: the budget is whole bytes; a value with a
// unit or a sign is refused by name, never read as its leading digits.
func TestUnverifiedBodyBytesFromEnv(t *testing.T) {
	for raw, want := range map[string]int64{"67108864": 67108864, "10MB": -1, "-5": -1, "0": -1, "1e6": -1} {
		t.Setenv("CALLQUEUE_UNVERIFIED_BODY_BYTES", raw)
		if got := config.FromEnv().UnverifiedBodyBytes; got != want {
			t.Errorf("CALLQUEUE_UNVERIFIED_BODY_BYTES=%q: %d, want %d", raw, got, want)
		}
	}
}
