package callstate

import (
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// AttemptCallID is the call_id sent to the dialler for one attempt of a
// call: "<call uuid>.<attempt>". It is distinct per attempt, so whatever
// the dialler reports about it (call events, post-calls, failures) names
// the attempt and not only the call, and our call id can be read back.
func AttemptCallID(id uuid.UUID, attempt int) string {
	return id.String() + "." + strconv.Itoa(attempt)
}

// ParseAttemptCallID reads an AttemptCallID back; ok is false for
// anything else, a bare call uuid included.
func ParseAttemptCallID(s string) (uuid.UUID, int, bool) {
	head, tail, found := strings.Cut(s, ".")
	if !found || len(head) != 36 {
		return uuid.Nil, 0, false
	}
	id, err := uuid.Parse(head)
	if err != nil {
		return uuid.Nil, 0, false
	}
	attempt, err := strconv.Atoi(tail)
	if err != nil || attempt < 1 || strconv.Itoa(attempt) != tail {
		return uuid.Nil, 0, false
	}
	return id, attempt, true
}
