package callstate_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
)

func TestAttemptCallID(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("0b6f3e1a-7c55-4c1e-9b3e-2f4d8e9a01c1")
	if got := callstate.AttemptCallID(id, 2); got != "0b6f3e1a-7c55-4c1e-9b3e-2f4d8e9a01c1.2" {
		t.Fatalf("AttemptCallID = %q", got)
	}
	for attempt := 1; attempt <= 20; attempt++ {
		gotID, gotAttempt, ok := callstate.ParseAttemptCallID(callstate.AttemptCallID(id, attempt))
		if !ok || gotID != id || gotAttempt != attempt {
			t.Fatalf("round trip of attempt %d = %s, %d, %v", attempt, gotID, gotAttempt, ok)
		}
	}
	for _, bad := range []string{
		"",
		id.String(), // a bare call id names no attempt
		id.String() + ".",
		id.String() + ".0",
		id.String() + ".-1",
		id.String() + ".01",
		id.String() + ".2.3",
		id.String() + ".x",
		"va-" + id.String() + ".2",
		"not-a-uuid-at-all-not-a-uuid-at-all-.2",
		id.String() + ".99999999999999999999999",
	} {
		if _, _, ok := callstate.ParseAttemptCallID(bad); ok {
			t.Errorf("ParseAttemptCallID(%q) accepted", bad)
		}
	}
}
