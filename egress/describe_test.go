package egress

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// TestFailureLogsNoQuery: a failed request's log text keeps the address
// but not its query, where a CRM lookup puts the person's phone number.
func TestFailureLogsNoQuery(t *testing.T) {
	cause := &url.Error{Op: "Get", URL: "http://user:pw@127.0.0.1:9/lookup?phone=%2B380671230002#x", Err: context.DeadlineExceeded}
	got := Fail("CRM request", cause).Error()
	for _, leak := range []string{"380671230002", "phone=", "pw"} {
		if strings.Contains(got, leak) {
			t.Errorf("Error() = %q carries %q", got, leak)
		}
	}
	if !strings.Contains(got, "127.0.0.1:9/lookup") || !strings.Contains(got, "deadline exceeded") {
		t.Errorf("Error() = %q, want the address without its query and the cause", got)
	}
}
