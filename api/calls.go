package api

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

func (a *API) listCalls(w http.ResponseWriter, r *http.Request) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.CallFilter{Limit: limit, Offset: offset, Phone: q.Get("phone"), Order: q.Get("order")}
	switch f.Order {
	case "", "createdAt", "-createdAt":
	default:
		return jsonhttp.BadRequest("order", "order must be createdAt or -createdAt")
	}
	if v := q.Get("integrationId"); v != "" {
		if f.IntegrationID, err = uuid.Parse(v); err != nil {
			return jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
	}
	if v := q.Get("campaignId"); v != "" {
		if f.CampaignID, err = uuid.Parse(v); err != nil {
			return jsonhttp.BadRequest("campaignId", "campaignId must be a uuid")
		}
	}
	if v := q.Get("status"); v != "" {
		if f.Status = callstate.Status(v); !f.Status.Valid() {
			return jsonhttp.BadRequest("status", "unknown status %q", v)
		}
	}
	if f.Outcome = q.Get("outcome"); f.Outcome != "" && !callstate.ValidOutcome(f.Outcome) {
		return jsonhttp.BadRequest("outcome", "unknown outcome %q", f.Outcome)
	}
	for name, dst := range map[string]*time.Time{"createdFrom": &f.CreatedFrom, "createdTo": &f.CreatedTo} {
		if v := q.Get(name); v != "" {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				return jsonhttp.BadRequest(name, "%s must be an RFC 3339 time", name)
			}
		}
	}
	calls, err := a.store.ListCalls(r.Context(), owner(r.Context()), f)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, calls)
	return nil
}

// callWithEvents is a call with its history, oldest first.
type callWithEvents struct {
	store.Call
	Events []store.CallEventRow `json:"events"`
	// Attempts are its dials, first first, each with the caller number it
	// was dialled from.
	Attempts []store.Attempt `json:"attempts"`
	// CRM is the call's CRM updates and their delivery state.
	CRM []store.Delivery `json:"crm"`
}

func (a *API) getCall(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var c store.Call
	if err := afterIntake(r.Context(), id, func() (err error) {
		c, err = a.store.GetCall(r.Context(), owner(r.Context()), id)
		return err
	}); err != nil {
		return err
	}
	events, err := a.store.CallHistory(r.Context(), id)
	if err != nil {
		return err
	}
	attempts, err := a.store.CallAttempts(r.Context(), id)
	if err != nil {
		return err
	}
	deliveries, err := a.store.CallDeliveries(r.Context(), id)
	if err != nil {
		return err
	}
	if deliveries == nil {
		deliveries = []store.Delivery{}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, callWithEvents{Call: c, Events: events, Attempts: attempts, CRM: deliveries})
	return nil
}

func (a *API) cancelCall(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var c store.Call
	var applied store.Applied
	if err := afterIntake(r.Context(), id, func() (err error) {
		c, applied, err = a.store.CancelCall(r.Context(), owner(r.Context()), id, "", a.now())
		return err
	}); err != nil {
		return err
	}
	if applied.FreesSlot() {
		a.kicker.Kick(c.IntegrationID)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, c)
	return nil
}
