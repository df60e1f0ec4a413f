package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/store"
)

// TestPeopleAccessAndErasure: GET /api/people/{phone} gathers the number's
// calls and suppressions of the owner (one integration with integrationId);
// DELETE erases them, answers what it removed, keeps the suppression as an
// erased entry shown with a null number, and audits without the number;
// bad input is a 400 naming the field, another owner's integration a 404,
// and a live call a 409 that erases nothing.
func TestPeopleAccessAndErasure(t *testing.T) {
	t.Parallel()
	w := setup(t)
	w.va.Hang() // dials stay in flight: the calls hold their slots
	in := activeIntegration(t, w.a, w.va, "People", map[string]any{"concurrency_limit": 1})
	other := activeIntegration(t, w.b, w.va, "Other", nil)
	const number = "+380931112244"
	live := w.originate(t, w.a, in, number)
	servicetest.Eventually(t, waitFor, "the first call dialled", func() bool { return getCall(t, w.a, live).Status == "initiated" })
	queued := w.originate(t, w.a, in, number)
	w.a.do(t, "POST", integrationPath(in, "/suppressions"), map[string]any{"phoneNumber": number, "reason": "asked"}).
		expect(t, http.StatusCreated)

	doc := decodeAs[store.Person](t, w.a.do(t, "GET", "/api/people/"+number, nil).expect(t, http.StatusOK))
	if len(doc.Calls) != 2 || len(doc.Suppressions) != 1 || doc.PhoneNumber != number {
		t.Fatalf("access document: %d calls, suppressions %+v", len(doc.Calls), doc.Suppressions)
	}
	// The national form is read in the integration's country.
	one := decodeAs[store.Person](t, w.a.do(t, "GET", "/api/people/0931112244?integrationId="+in.ID.String(), nil).expect(t, http.StatusOK))
	if len(one.Calls) != 2 {
		t.Fatalf("access within the integration: %d calls", len(one.Calls))
	}
	if theirs := decodeAs[store.Person](t, w.b.do(t, "GET", "/api/people/"+number, nil).expect(t, http.StatusOK)); len(theirs.Calls) != 0 {
		t.Fatalf("another owner sees %d calls", len(theirs.Calls))
	}
	expectFieldError(t, w.a.do(t, "GET", "/api/people/not-a-number", nil), http.StatusBadRequest, "phone")
	expectFieldError(t, w.a.do(t, "DELETE", "/api/people/"+number+"?integrationId=nope", nil), http.StatusBadRequest, "integrationId")
	expectError(t, w.a.do(t, "DELETE", "/api/people/"+number+"?integrationId="+other.ID.String(), nil), http.StatusNotFound)

	// The first call is being dialled: erasure waits for it.
	expectFieldError(t, w.a.do(t, "DELETE", "/api/people/"+number, nil), http.StatusConflict, "phone")
	if getCall(t, w.a, queued).ID != queued {
		t.Fatal("a refused erasure removed a call")
	}
	w.a.do(t, "POST", "/api/calls/"+queued.String()+"/cancel", nil).expect(t, http.StatusOK)
	w.a.do(t, "POST", "/api/calls/"+live.String()+"/cancel", nil).expect(t, http.StatusOK)
	w.va.Release()
	servicetest.Eventually(t, waitFor, "the dial's answer", func() bool { return getCall(t, w.a, live).DialState == "accepted" })
	servicetest.Webhook(t, w.inst, in, "call-events", map[string]any{"eventType": "call_end", "callId": live, "duration": 30}, nil)
	servicetest.Eventually(t, waitFor, "the live call's end", func() bool { return getCall(t, w.a, live).Status == "cancelled" })

	erased := decodeAs[struct {
		Erased store.Erased `json:"erased"`
	}](t, w.a.do(t, "DELETE", "/api/people/"+number, nil).expect(t, http.StatusOK))
	if erased.Erased.Calls != 2 || erased.Erased.Suppressions != 1 || erased.Erased.Events == 0 {
		t.Fatalf("erased %+v", erased.Erased)
	}
	w.a.do(t, "GET", "/api/calls/"+live.String(), nil).expect(t, http.StatusNotFound)
	list := w.a.do(t, "GET", integrationPath(in, "/suppressions"), nil).expect(t, http.StatusOK)
	if !strings.Contains(string(list.body), `"phoneNumber":null`) || !strings.Contains(string(list.body), `"erased":true`) ||
		strings.Contains(string(list.body), number[1:]) {
		t.Fatalf("suppressions after erasure: %s", list.body)
	}
	audit := w.a.do(t, "GET", "/api/audit-logs", nil).expect(t, http.StatusOK)
	if !strings.Contains(string(audit.body), `"resource":"person"`) || strings.Contains(string(audit.body), number[4:]) {
		t.Fatalf("audit log after erasure: %s", audit.body)
	}
	// The number is still never dialled.
	again := w.originate(t, w.a, in, number)
	servicetest.Eventually(t, waitFor, "the call after erasure", func() bool { return getCall(t, w.a, again).Outcome != nil })
	if c := getCall(t, w.a, again); c.Status != "cancelled" || *c.Outcome != "suppressed" {
		t.Fatalf("call after erasure %s/%s, want cancelled/suppressed", c.Status, *c.Outcome)
	}
}

// TestDataConfigValidation: data.store and data.retention_days are
// validated and bounded like the other keys.
func TestDataConfigValidation(t *testing.T) {
	t.Parallel()
	w := setup(t)
	in := createIntegration(t, w.a, map[string]any{"name": "Data"})
	path := integrationPath(in, "/config/data")
	for _, bad := range []struct {
		body  any
		field string
	}{
		{map[string]any{"store": "some"}, "store"},
		{map[string]any{"retention_days": 0}, "retention_days"},
		{map[string]any{"retention_days": 3651}, "retention_days"},
	} {
		expectFieldError(t, w.a.do(t, "PUT", path, bad.body), http.StatusUnprocessableEntity, bad.field)
	}
	expectFieldError(t, w.a.do(t, "PUT", path, map[string]any{"retention_days": "90"}), http.StatusBadRequest, "retention_days")
	expectFieldError(t, w.a.do(t, "PUT", path, map[string]any{"keep": true}), http.StatusBadRequest, "keep")
	got := w.a.do(t, "PUT", path, map[string]any{"store": "minimal", "retention_days": 3650}).expect(t, http.StatusOK)
	if string(got.body) != `{"store":"minimal","retention_days":3650}`+"\n" && string(got.body) != `{"store":"minimal","retention_days":3650}` {
		t.Fatalf("stored data config %s", got.body)
	}
}
