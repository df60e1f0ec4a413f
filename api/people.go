package api

import (
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/phone"
	"github.com/callqueue/callqueue/store"
)

// personScope reads a people route: the number (E.164, read in the
// integration's country when one is named) and the integration, or
// uuid.Nil for all of the owner's.
func (a *API) personScope(r *http.Request) (uuid.UUID, string, error) {
	id, region := uuid.Nil, ""
	if v := r.URL.Query().Get("integrationId"); v != "" {
		parsed, err := uuid.Parse(v)
		if err != nil {
			return uuid.Nil, "", jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
		if _, err := a.store.GetIntegration(r.Context(), owner(r.Context()), parsed); err != nil {
			return uuid.Nil, "", err
		}
		cfg, err := a.store.Config(r.Context(), parsed)
		if err != nil {
			return uuid.Nil, "", err
		}
		id, region = parsed, phone.Region(cfg.Agent.Locale)
	}
	number, err := phone.Normalize(r.PathValue("phone"), region)
	if err != nil {
		return uuid.Nil, "", jsonhttp.BadRequest("phone", "phone cannot be read as a phone number (give it in E.164, e.g. +380991234567)")
	}
	return id, number, nil
}

// getPerson answers a person's right of access: everything stored about
// the number, as one document.
func (a *API) getPerson(w http.ResponseWriter, r *http.Request) error {
	id, number, err := a.personScope(r)
	if err != nil {
		return err
	}
	p, err := a.store.PersonData(r.Context(), owner(r.Context()), id, number)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, p)
	return nil
}

// erasePerson answers a person's right to erasure.
func (a *API) erasePerson(w http.ResponseWriter, r *http.Request) error {
	id, number, err := a.personScope(r)
	if err != nil {
		return err
	}
	erased, err := a.store.ErasePerson(r.Context(), owner(r.Context()), id, number, a.now())
	if errors.Is(err, store.ErrPersonBusy) {
		return jsonhttp.Errorf(http.StatusConflict, "call_in_progress", "phone",
			"a call to this number is in progress; erase it once the call has ended")
	}
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]any{"erased": erased})
	return nil
}
