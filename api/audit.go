package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// actor is who the audit log names for a change made through the admin
// API: the owner of the bearer token.
func actor(ctx context.Context) string { return owner(ctx) }

// integrationAuditLog pages through one integration's changes, newest first.
func (a *API) integrationAuditLog(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	entries, total, err := a.store.AuditLog(r.Context(), in.ID, limit, offset)
	if err != nil {
		return err
	}
	writeAudit(w, entries, total)
	return nil
}

// ownerAuditLog pages through all of the owner's changes, newest first,
// including those of deleted integrations and of tokens, which no
// integration's log shows; ?integrationId= keeps one integration's, which
// is how a deleted integration's history is read.
func (a *API) ownerAuditLog(w http.ResponseWriter, r *http.Request) error {
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	var integration uuid.UUID
	if v := r.URL.Query().Get("integrationId"); v != "" {
		if integration, err = uuid.Parse(v); err != nil {
			return jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
	}
	entries, total, err := a.store.OwnerAuditLog(r.Context(), owner(r.Context()), integration, limit, offset)
	if err != nil {
		return err
	}
	writeAudit(w, entries, total)
	return nil
}

func writeAudit(w http.ResponseWriter, entries []store.AuditEntry, total int) {
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	jsonhttp.WriteJSON(w, http.StatusOK, entries)
}
