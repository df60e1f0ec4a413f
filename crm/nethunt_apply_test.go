package crm_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/crm/nethunttest"
)

// TestNetHuntApply: an update writes the outcome's label into the status
// dropdown, comments the summary and, with call_log, logs the call; the
// record is the call's record_id or the one person found by phone, and an
// update with no such person is a no_record, sent nowhere.
func TestNetHuntApply(t *testing.T) {
	t.Parallel()
	finished := time.Date(2026, 1, 21, 14, 39, 12, 0, time.UTC)
	secs := 90.0
	labels := map[string]string{"completed": "Called", "no_answer": "No answer", "failed": "Call failed"}
	tests := []struct {
		name    string
		cfg     config.CRM
		typed   []string // phones of the records in the folder, as typed
		update  func(u *crm.Update, ids []string)
		outcome outcome
		// check looks at the fake after the update.
		check func(t *testing.T, nh *nethunttest.Server, ids []string, err error)
	}{
		{
			name: "label, comment and call log", cfg: config.CRM{StatusValues: labels, CallLog: true}, typed: []string{"099 123 4567"},
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, _ error) {
				wantStatus(t, nh, ids[0], "Called")
				if c := nh.Comments(ids[0]); len(c) != 1 || c[0].Text != "Клієнт підтвердив участь у вебінарі" {
					t.Errorf("comments %+v", c)
				}
				logs := nh.CallLogs(ids[0])
				if len(logs) != 1 || logs[0].Text != "Called\n\nКлієнт підтвердив участь у вебінарі" || logs[0].Duration != 1.5 ||
					!logs[0].Time.Equal(finished.Add(-90*time.Second)) {
					t.Errorf("call logs %+v, want one of 1.5 minutes from %s", logs, finished.Add(-90*time.Second))
				}
			},
		},
		{
			name: "an outcome without a label is refused by the dropdown", typed: []string{"+380991234567"}, outcome: permanent,
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, err error) {
				wantStatus(t, nh, ids[0], nil)
				if !strings.Contains(err.Error(), "400") || crm.IsNoRecord(err) {
					t.Errorf("error %q", err)
				}
			},
		},
		{
			name: "no call log unless asked", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380991234567"},
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, _ error) {
				wantStatus(t, nh, ids[0], "Called")
				if l := nh.CallLogs(ids[0]); len(l) != 0 {
					t.Errorf("call logs %+v without call_log", l)
				}
			},
		},
		{
			name: "the call's status stands in for an empty outcome", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380991234567"},
			update: func(u *crm.Update, _ []string) {
				u.Event, u.Status, u.Outcome, u.Summary = "call.failed", "failed", "", ""
			},
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, _ error) {
				wantStatus(t, nh, ids[0], "Call failed")
				if c := nh.Comments(ids[0]); len(c) != 0 {
					t.Errorf("comments %+v without a summary", c)
				}
			},
		},
		{
			name: "record_id wins over the phone", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380991234567", "+380671000002"},
			update: func(u *crm.Update, ids []string) { u.RecordID = ids[1] },
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, _ error) {
				wantStatus(t, nh, ids[0], nil)
				wantStatus(t, nh, ids[1], "Called")
			},
		},
		{
			name: "no record for the phone", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380 67 100 00 01"}, outcome: permanent,
			check: func(t *testing.T, nh *nethunttest.Server, _ []string, err error) {
				var nr *crm.NoRecordError
				if !errors.As(err, &nr) || nr.Matches != 0 || strings.Contains(err.Error(), phone) {
					t.Errorf("error %v, want a NoRecordError without the phone", err)
				}
				wantNoWrites(t, nh)
			},
		},
		{
			name: "two people with the phone", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380991234567", "0991234567"}, outcome: permanent,
			check: func(t *testing.T, nh *nethunttest.Server, ids []string, err error) {
				var nr *crm.NoRecordError
				if !errors.As(err, &nr) || nr.Matches != 2 {
					t.Errorf("error %v, want a NoRecordError of 2 matches", err)
				}
				wantNoWrites(t, nh)
			},
		},
		{
			name: "record gone", cfg: config.CRM{StatusValues: labels}, typed: []string{"+380991234567"}, outcome: permanent,
			update: func(u *crm.Update, _ []string) { u.RecordID = "deleted-record" },
			check: func(t *testing.T, _ *nethunttest.Server, _ []string, err error) {
				if crm.IsNoRecord(err) || !strings.Contains(err.Error(), "404") {
					t.Errorf("error %v, want the update's 404", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nh := nethunttest.New(t)
			var ids []string
			for i, p := range tt.typed {
				ids = append(ids, nh.AddRecord(nethunttest.Folder, map[string]any{"Name": []string{"Іван", "Петро"}[i%2], "Phone": p}))
			}
			u := crm.Update{
				Key: "outbox-17", Event: "call.completed", CallID: "7c0e6a8e-1111-4222-8333-944455556666", PhoneNumber: phone,
				Status: "completed", Attempt: 1, Outcome: "completed", Summary: "Клієнт підтвердив участь у вебінарі",
				DurationSecs: &secs, FinishedAt: finished,
			}
			if tt.update != nil {
				tt.update(&u, ids)
			}
			err := nhClient(t, nh, tt.cfg, defaultFields, nethunttest.APIKey).Apply(t.Context(), u)
			checkOutcome(t, err, tt.outcome)
			tt.check(t, nh, ids, err)
		})
	}
}

// wantStatus fails the test unless record id's Status field is want (nil:
// never written).
func wantStatus(t *testing.T, nh *nethunttest.Server, id string, want any) {
	t.Helper()
	r, ok := nh.Record(id)
	if !ok {
		t.Fatalf("record %s is gone", id)
	}
	if got := r.Fields["Status"]; got != want {
		t.Errorf("record %s: Status %v, want %v", id, got, want)
	}
}

func wantNoWrites(t *testing.T, nh *nethunttest.Server) {
	t.Helper()
	if w := nh.Writes(); len(w) != 0 {
		t.Errorf("%d writes, want none: %+v", len(w), w)
	}
}

// TestNetHuntRateLimited: a 429 is retryable and carries its Retry-After,
// in seconds or as a date; a missing or huge one is bounded.
func TestNetHuntRateLimited(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "30", 30 * time.Second},
		{"missing", "", crm.RetryAfterLeast},
		{"huge", "99999999999", crm.RetryAfterMost},
		{"a date", time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat), crm.RetryAfterMost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nh := nethunttest.New(t)
			nh.RateLimit(1, tt.header)
			u := crm.Update{RecordID: "rec-1", PhoneNumber: phone, Status: "completed", Outcome: "completed"}
			err := nhClient(t, nh, config.CRM{}, defaultFields, nethunttest.APIKey).Apply(t.Context(), u)
			checkOutcome(t, err, retryable)
			if got := crm.RetryAfter(err); got != tt.want {
				t.Errorf("RetryAfter = %s, want %s (err %v)", got, tt.want, err)
			}
		})
	}
}
