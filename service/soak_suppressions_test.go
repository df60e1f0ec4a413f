package service_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/store"
)

// suppressAndOriginate is a CRM's originate for a number that must not be
// called: one the operator has just suppressed, or one whose person asked
// in a call not to be called again (a do_not_call post-call, once its
// suppression is visible). The originate is accepted and its call must
// never be dialled: the number is checked where the slot is claimed, which
// is after the originate was answered.
func (w *soakWorld) suppressAndOriginate() {
	n := w.suppressedPhones
	w.suppressedPhones++
	phone, why := fmt.Sprintf("+38068%07d", n), "manual"
	// A suppression asked in a call is applied with the post-call, not by
	// the admin API: while the API's AddSuppressions is armed to lose an
	// answer, the operator suppresses a number.
	if dnc := w.va.doNotCallPhones(); len(dnc) > 0 && !w.lostAPI.Armed(store.PathAddSuppressions) && w.rng.IntN(2) == 0 {
		phone, why = dnc[w.rng.IntN(len(dnc))], "requested_in_call"
		if !w.suppressedNow(phone) {
			return // its post-call is not applied yet
		}
	} else if code := w.retryAdmin("POST", "/api/integrations/"+w.c.integ.ID.String()+"/suppressions",
		map[string]any{"phoneNumber": phone, "reason": "soak"}, nil); code != http.StatusCreated {
		if code < 500 && code != 0 {
			w.t.Errorf("suppress %s: %d", phone, code)
		}
		return
	}
	id, err := w.c.originateRetrying(phone, fmt.Sprintf("soak-suppressed-%d", n))
	if err != nil {
		w.mu.Lock()
		w.unacked++
		w.mu.Unlock()
		return
	}
	w.mustNotDial[id] = phone
	w.fault("originate_suppressed " + why)
}

// suppressedNow reports whether phone is on the integration's suppression
// list (read from the database, as the claim does).
func (w *soakWorld) suppressedNow(phone string) bool {
	list, err := w.c.env.Store.ListSuppressions(context.Background(), w.owner(), w.c.integ.ID, 10000, 0)
	if err != nil {
		return false
	}
	for _, s := range list {
		if s.PhoneNumber == phone {
			return true
		}
	}
	return false
}

func (w *soakWorld) owner() string { return "owner-" + w.t.Name() }

// checkSuppressions: a call originated for a suppressed number was never
// dialled and ended cancelled with outcome suppressed; every acknowledged
// do_not_call post-call left its number suppressed (requested_in_call).
func (w *soakWorld) checkSuppressions(rows map[uuid.UUID]callRow) {
	t := w.t
	for id, phone := range w.mustNotDial {
		r, ok := rows[id]
		switch {
		case !ok:
			t.Errorf("the originate for the suppressed %s was answered with %s, which is not stored", phone, id)
		case r.Status == string(callstate.Cancelled) && r.Outcome == callstate.OutcomeCancelled && w.cancelAcknowledged(id):
			// The operator's cancel (of a call picked by its stage) came
			// first and was acknowledged.
		case r.Status != string(callstate.Cancelled) || r.Outcome != callstate.OutcomeSuppressed:
			t.Errorf("call %s to the suppressed %s ended %s/%s, want cancelled/suppressed", id, phone, r.Status, r.Outcome)
		}
		if n := w.va.CountFor(id.String()); n != 0 {
			t.Errorf("call %s to the suppressed %s was dialled %d times", id, phone, n)
		}
	}
	list, err := w.c.env.Store.ListSuppressions(context.Background(), w.owner(), w.c.integ.ID, 100000, 0)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, s := range list {
		reasons[s.PhoneNumber] = s.Reason
	}
	asked := 0
	for _, a := range w.acked {
		if !a.doNotCall {
			continue
		}
		asked++
		if reasons[a.phone] != store.SuppressionReasonRequested {
			t.Errorf("call %s asked not to be called again (attempt %d, acknowledged), but %s is %q on the suppression list",
				a.call, a.attempt, a.phone, reasons[a.phone])
		}
	}
	t.Logf("%d originates for suppressed numbers, %d acknowledged do_not_call post-calls", len(w.mustNotDial), asked)
}

// cancelAcknowledged reports whether the operator's cancel of call id was
// acknowledged.
func (w *soakWorld) cancelAcknowledged(id uuid.UUID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.cancels, func(c soakCancel) bool { return c.call == id })
}
