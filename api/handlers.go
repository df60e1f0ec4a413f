package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// handlerNamePattern is what a handler may be called: seed names such as
// "message.received", "order-created" or "call-originate".
var handlerNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// handlerBody is the writable part of a handler.
type handlerBody struct {
	IntegrationID *string         `json:"integrationId"`
	Name          *string         `json:"name"`
	DefaultArgs   json.RawMessage `json:"defaultArgs"`
	// Read-only fields a client may echo back from a GET; ignored.
	ID        json.RawMessage `json:"id"`
	CreatedAt json.RawMessage `json:"createdAt"`
	UpdatedAt json.RawMessage `json:"updatedAt"`
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{'
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// validate checks the fields given; create requires a name.
func (b handlerBody) validate(create bool) (store.HandlerFields, error) {
	var f store.HandlerFields
	switch {
	case create && (b.Name == nil || *b.Name == ""):
		return f, jsonhttp.Invalid("name", "name is required")
	case b.Name != nil && !handlerNamePattern.MatchString(*b.Name):
		return f, jsonhttp.Invalid("name", "name must be 1 to 128 letters, digits, . _ : - starting with a letter or digit")
	case b.DefaultArgs != nil && !isNull(b.DefaultArgs) && !isObject(b.DefaultArgs):
		return f, jsonhttp.Invalid("defaultArgs", "defaultArgs must be an object")
	}
	if b.DefaultArgs != nil {
		// Handler options are checked when they are stored, not first when
		// the handler runs.
		if _, err := takeHandlerOptions(b.DefaultArgs, "defaultArgs", &handlerOptions{}); err != nil {
			return f, err
		}
	}
	f.Name = b.Name
	if b.DefaultArgs != nil {
		f.DefaultArgs = b.DefaultArgs
		if isNull(b.DefaultArgs) {
			f.DefaultArgs = json.RawMessage(`{}`)
		}
	}
	return f, nil
}

// checkIntegrationID refuses a body's integrationId that names another
// integration than the one in the path (a handler does not move).
func (b handlerBody) checkIntegrationID(id uuid.UUID) error {
	if b.IntegrationID == nil {
		return nil
	}
	if got, err := uuid.Parse(*b.IntegrationID); err != nil || got != id {
		return jsonhttp.Invalid("integrationId", "integrationId must be the handler's integration, %s", id)
	}
	return nil
}

func (a *API) listHandlers(w http.ResponseWriter, r *http.Request) error {
	var integrationID uuid.UUID
	if v := r.URL.Query().Get("integrationId"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return jsonhttp.BadRequest("integrationId", "integrationId must be a uuid")
		}
		integrationID = id
	}
	list, err := a.store.ListHandlers(r.Context(), owner(r.Context()), integrationID)
	if errors.Is(err, store.ErrNotFound) {
		return jsonhttp.Errorf(http.StatusNotFound, "not_found", "integrationId", "no integration %s", integrationID)
	}
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

func (a *API) listIntegrationHandlers(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	list, err := a.store.ListHandlers(r.Context(), owner(r.Context()), in.ID)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}

// createHandler is POST /api/handlers (integrationId in the body) and
// POST /api/integrations/{id}/handlers (nested).
func (a *API) createHandler(nested bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var integrationID uuid.UUID
		if nested {
			in, err := a.integration(r)
			if err != nil {
				return err
			}
			integrationID = in.ID
		}
		var b handlerBody
		if err := readJSON(w, r, &b); err != nil {
			return err
		}
		f, err := b.validate(true)
		if err != nil {
			return err
		}
		if nested {
			if err := b.checkIntegrationID(integrationID); err != nil {
				return err
			}
		} else {
			if b.IntegrationID == nil || *b.IntegrationID == "" {
				return jsonhttp.Invalid("integrationId", "integrationId is required")
			}
			id, err := uuid.Parse(*b.IntegrationID)
			if err != nil {
				return jsonhttp.Invalid("integrationId", "integrationId must be a uuid")
			}
			integrationID = id
		}
		who := owner(r.Context())
		h, err := a.store.CreateHandler(r.Context(), who, actor(r.Context()), integrationID, *f.Name, f.DefaultArgs)
		if errors.Is(err, store.ErrNotFound) && !nested {
			return jsonhttp.Errorf(http.StatusNotFound, "not_found", "integrationId", "no integration %s", integrationID)
		}
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusCreated, h)
		return nil
	}
}

// handlerScope reads the handler's id from the path and, for the nested
// routes, the integration it must belong to.
func (a *API) handlerScope(r *http.Request, nested bool) (integrationID, id uuid.UUID, err error) {
	if nested {
		in, err := a.integration(r)
		if err != nil {
			return uuid.Nil, uuid.Nil, err
		}
		id, err := pathID(r, "handlerId")
		return in.ID, id, err
	}
	id, err = pathID(r, "id")
	return uuid.Nil, id, err
}

func (a *API) getHandler(w http.ResponseWriter, r *http.Request) error {
	_, id, err := a.handlerScope(r, false)
	if err != nil {
		return err
	}
	h, err := a.store.GetHandler(r.Context(), owner(r.Context()), uuid.Nil, id)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, h)
	return nil
}

// updateHandler is PATCH /api/handlers/{id} and PUT
// /api/integrations/{id}/handlers/{handlerId}: the fields given replace
// the handler's (defaultArgs as a whole).
func (a *API) updateHandler(nested bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		integrationID, id, err := a.handlerScope(r, nested)
		if err != nil {
			return err
		}
		who := owner(r.Context())
		cur, err := a.store.GetHandler(r.Context(), who, integrationID, id)
		if err != nil {
			return err
		}
		var b handlerBody
		if err := readJSON(w, r, &b); err != nil {
			return err
		}
		if err := b.checkIntegrationID(cur.IntegrationID); err != nil {
			return err
		}
		f, err := b.validate(false)
		if err != nil {
			return err
		}
		h, err := a.store.UpdateHandler(r.Context(), who, actor(r.Context()), integrationID, id, f)
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, h)
		return nil
	}
}

func (a *API) deleteHandler(nested bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		integrationID, id, err := a.handlerScope(r, nested)
		if err != nil {
			return err
		}
		who := owner(r.Context())
		if err := a.store.DeleteHandler(r.Context(), who, actor(r.Context()), integrationID, id); err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
		return nil
	}
}
