package api

import (
	"net/http"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// listTokens lists the owner's own access tokens, revoked ones included,
// newest first. Only hashes are stored, and those are never shown.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	list, err := a.store.ListTokens(r.Context(), owner(r.Context()))
	if err != nil {
		return err
	}
	if list == nil {
		list = []store.AccessToken{}
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

// revokeToken revokes one of the owner's live tokens, the request's own
// included. Another owner's token, or one already revoked, is a 404.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := a.store.RevokeToken(r.Context(), owner(r.Context()), actor(r.Context()), id); err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
	return nil
}
