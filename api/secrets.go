package api

import (
	"net/http"
	"regexp"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

var secretKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

type secretBody struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
	// Integration names the integration by slug or name (/api/core/secrets).
	Integration *string `json:"integration"`
}

func (b secretBody) validate() (string, string, error) {
	if b.Key == nil || !secretKeyPattern.MatchString(*b.Key) {
		return "", "", jsonhttp.Invalid("key", "key is required: 1 to 128 letters, digits, _ . -")
	}
	if b.Value == nil {
		return "", "", jsonhttp.Invalid("value", "value is required")
	}
	if len(*b.Value) > 64<<10 {
		return "", "", jsonhttp.Invalid("value", "value must be at most 64 KiB")
	}
	return *b.Key, *b.Value, nil
}

func (a *API) listSecrets(kind string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		in, err := a.integration(r)
		if err != nil {
			return err
		}
		list, err := a.store.ListSecrets(r.Context(), in.ID, kind)
		if err != nil {
			return err
		}
		jsonhttp.WriteJSON(w, http.StatusOK, list)
		return nil
	}
}

func (a *API) createSecret(kind string) func(w http.ResponseWriter, r *http.Request) error {
	return a.writeSecret(http.StatusCreated, func(r *http.Request, in store.Integration, key, value string) (store.Secret, error) {
		return a.store.PutSecret(r.Context(), actor(r.Context()), in.ID, kind, key, value, false)
	})
}

func (a *API) updateSecret(kind string) func(w http.ResponseWriter, r *http.Request) error {
	return a.writeSecret(http.StatusOK, func(r *http.Request, in store.Integration, key, value string) (store.Secret, error) {
		secretID, err := pathID(r, "secretId")
		if err != nil {
			return store.Secret{}, err
		}
		return a.store.UpdateSecret(r.Context(), actor(r.Context()), in.ID, kind, secretID, key, value)
	})
}

// writeSecret is a handler that validates a secret's body and stores it
// with write; it answers status with the stored secret (its value masked).
func (a *API) writeSecret(status int, write func(r *http.Request, in store.Integration, key, value string) (store.Secret, error)) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		in, err := a.integration(r)
		if err != nil {
			return err
		}
		var b secretBody
		if err := readJSON(w, r, &b); err != nil {
			return err
		}
		if b.Integration != nil {
			return jsonhttp.BadRequest("integration", `unknown field "integration"`)
		}
		key, value, err := b.validate()
		if err != nil {
			return err
		}
		sec, err := write(r, in, key, value)
		if err != nil {
			return err
		}
		a.secretChanged(in)
		jsonhttp.WriteJSON(w, status, sec)
		return nil
	}
}

func (a *API) secretChanged(in store.Integration) {
	a.onIntegrationChange(in.Slug)
	a.kicker.Kick(in.ID)
}

func (a *API) deleteSecret(kind string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		in, err := a.integration(r)
		if err != nil {
			return err
		}
		secretID, err := pathID(r, "secretId")
		if err != nil {
			return err
		}
		if err := a.store.DeleteSecret(r.Context(), actor(r.Context()), in.ID, kind, secretID); err != nil {
			return err
		}
		a.secretChanged(in)
		jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
		return nil
	}
}

// integrationByName finds owner's integration by slug, then by exact name
// (seed 000 names integrations by name in /api/core/secrets).
func (a *API) integrationByName(r *http.Request, name string) (store.Integration, error) {
	in, err := a.store.IntegrationBySlug(r.Context(), name)
	if err == nil && in.OwnerID == owner(r.Context()) {
		return in, nil
	}
	list, _, err := a.store.ListIntegrations(r.Context(), owner(r.Context()), store.ListOptions{Search: name, Limit: 100})
	if err != nil {
		return store.Integration{}, err
	}
	for _, in := range list {
		if in.Name == name {
			return in, nil
		}
	}
	return store.Integration{}, jsonhttp.Errorf(http.StatusNotFound, "not_found", "integration", "no integration %q", name)
}

func (a *API) coreCreateSecret(w http.ResponseWriter, r *http.Request) error {
	var b secretBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	if b.Integration == nil || *b.Integration == "" {
		return jsonhttp.Invalid("integration", "integration is required")
	}
	key, value, err := b.validate()
	if err != nil {
		return err
	}
	in, err := a.integrationByName(r, *b.Integration)
	if err != nil {
		return err
	}
	sec, err := a.store.PutSecret(r.Context(), actor(r.Context()), in.ID, store.KindSecret, key, value, true)
	if err != nil {
		return err
	}
	a.secretChanged(in)
	jsonhttp.WriteJSON(w, http.StatusCreated, sec)
	return nil
}

func (a *API) coreListSecrets(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Query().Get("integration")
	if name == "" {
		return jsonhttp.BadRequest("integration", "integration is required")
	}
	in, err := a.integrationByName(r, name)
	if err != nil {
		return err
	}
	list, err := a.store.ListSecrets(r.Context(), in.ID, store.KindSecret)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, list)
	return nil
}
