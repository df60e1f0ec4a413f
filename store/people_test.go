package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/store/storetest"
)

// callTo queues a call of integ to number.
func callTo(t *testing.T, s *store.Store, integ uuid.UUID, number string, at time.Time) uuid.UUID {
	t.Helper()
	c := newCall(integ, at)
	c.PhoneNumber = number
	insert(t, s, at, c)
	return c.ID
}

// TestErasePerson: erasure removes the number's calls in the owner's
// integrations with everything linked to them, keeps campaign counts, leaves
// other owners alone, writes an audit entry without the number, and keeps
// the suppression as a hash that still stops calls, takes a new upload and
// can be lifted.
func TestErasePerson(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	a, b := activeIntegration(t, s, nil), activeIntegration(t, s, nil)
	putConfig(t, s, a.ID, config.KeyCRM, map[string]any{"kind": "webhook", "update_url": "http://127.0.0.1:1/update"})
	other := createIntegration(t, s, "owner-b", "Other owner")
	activate(t, s, other.ID)

	finished := finishCall(t, s, a.ID, t0) // asks for do_not_call: its number is suppressed
	number := getCall(t, s, finished).PhoneNumber
	queuedInB := callTo(t, s, b.ID, number, t0)
	kept := callTo(t, s, other.ID, number, t0)
	campaign, err := s.CreateCampaign(t.Context(), "owner-a", b.ID, store.CampaignSpec{Name: "Leads", Priority: 5}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, added, err := s.AddRecipients(t.Context(), "owner-a", campaign.ID, []store.Recipient{{PhoneNumber: number}}, t0); err != nil || added != 1 {
		t.Fatalf("add recipient: %d, %v", added, err)
	}

	doc, err := s.PersonData(t.Context(), "owner-a", uuid.Nil, number)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Calls) != 3 || len(doc.Suppressions) != 1 || doc.Suppressions[0].Erased {
		t.Fatalf("access document has %d calls, suppressions %+v; want 3 calls and the number's suppression", len(doc.Calls), doc.Suppressions)
	}
	for _, c := range doc.Calls {
		if c.ID == kept {
			t.Fatal("access document holds another owner's call")
		}
		if c.ID == finished && (!strings.Contains(string(c.Transcript), secretTranscript) || len(c.Events) < 4 || len(c.CRMUpdates) != 1 ||
			!strings.Contains(string(c.CRMUpdates[0].Payload), secretSummary)) {
			t.Fatalf("finished call in the document: transcript %s, %d events, updates %+v", c.Transcript, len(c.Events), c.CRMUpdates)
		}
	}

	erased, err := s.ErasePerson(t.Context(), "owner-a", uuid.Nil, number, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if erased.Calls != 3 || erased.CRMUpdates != 1 || erased.Events < 6 || erased.Attempts != 1 || erased.Suppressions != 1 {
		t.Fatalf("erased %+v", erased)
	}
	for _, id := range []uuid.UUID{finished, queuedInB} {
		if _, err := s.CallByID(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("call %s survived erasure: %v", id, err)
		}
	}
	if getCall(t, s, kept).PhoneNumber != number {
		t.Fatal("another owner's call was erased")
	}
	if n := countRows(t, s, `SELECT count(*) FROM call_events e JOIN calls c ON c.id = e.call_id WHERE c.phone_number = $1
		AND c.integration_id <> $2`, number, other.ID); n != 0 {
		t.Fatalf("%d history rows left", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM suppressions WHERE phone_number = $1`, number); n != 0 {
		t.Fatalf("%d suppressions still hold the number", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM audit_logs WHERE owner_id = 'owner-a' AND (before::text || after::text) LIKE '%' || $1 || '%'`,
		number[4:]); n != 0 {
		t.Fatalf("%d audit entries name the number", n)
	}
	if n := countRows(t, s, `SELECT count(*) FROM audit_logs WHERE resource = $1 AND owner_id = 'owner-a'`, store.ResourcePerson); n != 1 {
		t.Fatalf("%d erasure audit entries, want 1", n)
	}
	if c, err := s.GetCampaign(t.Context(), "owner-a", campaign.ID); err != nil || c.Progress.Total != 1 || c.Progress.Cancelled != 1 {
		t.Fatalf("campaign progress after erasure %+v (%v): the recipient still counts", c.Progress, err)
	}

	list, err := s.ListSuppressions(t.Context(), "owner-a", a.ID, 10, 0)
	if err != nil || len(list) != 1 || !list[0].Erased || list[0].PhoneNumber != "" {
		t.Fatalf("suppressions after erasure %+v, %v: want one erased entry", list, err)
	}
	doc, err = s.PersonData(t.Context(), "owner-a", a.ID, number)
	if err != nil || len(doc.Calls) != 0 || len(doc.Suppressions) != 1 || !doc.Suppressions[0].Erased {
		t.Fatalf("access after erasure %+v, %v", doc, err)
	}

	// The hashed entry still stops a new call to the number.
	again := callTo(t, s, a.ID, number, t0.Add(2*time.Hour))
	claim(t, s, a.ID, t0.Add(2*time.Hour))
	if c := getCall(t, s, again); c.Status != callstate.Cancelled || deref(c.Outcome) != callstate.OutcomeSuppressed {
		t.Fatalf("call after erasure: %s/%s, want cancelled/suppressed", c.Status, deref(c.Outcome))
	}
	// An upload of the number renews the hashed entry instead of writing the number down again.
	if n, err := s.AddSuppressions(t.Context(), "owner-a", a.ID, []store.Suppression{{PhoneNumber: number, Reason: "asked again"}},
		t0.Add(3*time.Hour)); err != nil || n != 1 {
		t.Fatalf("upload after erasure: %d, %v", n, err)
	}
	if list, _ := s.ListSuppressions(t.Context(), "owner-a", a.ID, 10, 0); len(list) != 1 || !list[0].Erased || list[0].Reason != "asked again" {
		t.Fatalf("suppressions after the upload %+v", list)
	}
	// And it can be lifted by its number.
	if err := s.DeleteSuppression(t.Context(), "owner-a", a.ID, number); err != nil {
		t.Fatalf("lift the erased suppression: %v", err)
	}
	if list, _ := s.ListSuppressions(t.Context(), "owner-a", a.ID, 10, 0); len(list) != 0 {
		t.Fatalf("suppressions after lifting %+v", list)
	}
}

// TestErasePersonWaitsForLiveCall: a call holding its slot is not erased
// under the conversation; nothing is, until it ends.
func TestErasePersonWaitsForLiveCall(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	number := "+380671112233"
	done := callTo(t, s, in.ID, number, t0)
	claim(t, s, in.ID, t0)
	if _, err := s.ErasePerson(t.Context(), "owner-a", in.ID, number, t0); !errors.Is(err, store.ErrPersonBusy) {
		t.Fatalf("erase during a call: %v, want ErrPersonBusy", err)
	}
	if getCall(t, s, done).Status != callstate.Initiated {
		t.Fatal("the live call changed")
	}
	apply(t, s, callEnd(in.ID, done, 2, t0.Add(time.Minute)))
	if erased, err := s.ErasePerson(t.Context(), "owner-a", in.ID, number, t0.Add(time.Hour)); err != nil || erased.Calls != 1 {
		t.Fatalf("erase after the call: %+v, %v", erased, err)
	}
	if _, err := s.ErasePerson(t.Context(), "owner-b", in.ID, number, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another owner's erasure of this integration: %v, want ErrNotFound", err)
	}
}

// TestErasedSuppressionSurvivesKeyRotation: after the secret key is
// rotated, the hash an erased suppression keeps still matches the number,
// which is still never dialled.
func TestErasedSuppressionSurvivesKeyRotation(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	in := activeIntegration(t, s, nil)
	const number = "+380631234500"
	if _, err := s.AddSuppressions(t.Context(), "owner-a", in.ID, []store.Suppression{{PhoneNumber: number}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ErasePerson(t.Context(), "owner-a", in.ID, number, t0); err != nil {
		t.Fatal(err)
	}
	newKey := randomSealer(t)
	if _, err := s.RotateKey(t.Context(), newSealer(t, string(storetest.SecretKey)), newKey); err != nil {
		t.Fatal(err)
	}
	rotated := store.New(s.Pool(), newKey)
	id := callTo(t, rotated, in.ID, number, t0.Add(time.Hour))
	claim(t, rotated, in.ID, t0.Add(time.Hour))
	if c := getCall(t, rotated, id); c.Status != callstate.Cancelled || deref(c.Outcome) != callstate.OutcomeSuppressed {
		t.Fatalf("call after the rotation: %s/%s, want cancelled/suppressed", c.Status, deref(c.Outcome))
	}
}
