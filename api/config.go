package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

var configKeyPattern = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// Quotas on free-form config keys (contract §3): a tenant cannot make the
// service store and load without bound on every config read.
const (
	MaxFreeFormKeys      = 32
	MaxFreeFormValueSize = 64 << 10
)

func (a *API) getConfig(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	cfg, err := a.store.Config(r.Context(), in.ID)
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, cfg.Effective())
	return nil
}

// configKey is the integration and the config key a request's path names.
func (a *API) configKey(r *http.Request) (store.Integration, string, error) {
	in, err := a.integration(r)
	if err != nil {
		return in, "", err
	}
	key := r.PathValue("key")
	if !configKeyPattern.MatchString(key) {
		return in, "", jsonhttp.ErrNotFound
	}
	return in, key, nil
}

func (a *API) getConfigKey(w http.ResponseWriter, r *http.Request) error {
	in, key, err := a.configKey(r)
	if err != nil {
		return err
	}
	cfg, err := a.store.Config(r.Context(), in.ID)
	if err != nil {
		return err
	}
	v, ok := cfg.Effective()[key]
	if !ok {
		return jsonhttp.Errorf(http.StatusNotFound, "not_found", "", "config key %q is not set", key)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, v)
	return nil
}

func (a *API) putConfigKey(w http.ResponseWriter, r *http.Request) error {
	in, key, err := a.configKey(r)
	if err != nil {
		return err
	}
	body, err := jsonhttp.ReadBody(w, r, 1<<20)
	if err != nil {
		return err
	}
	if !json.Valid(body) {
		return jsonhttp.BadRequest("", "body must be valid JSON")
	}
	if err := jsonhttp.CheckText(body); err != nil {
		return err
	}
	if !config.IsKnown(key) {
		if err := a.checkFreeFormQuota(r, in.ID, key, body); err != nil {
			return err
		}
	}
	value, err := config.Normalize(key, body)
	var fe *config.FieldError
	if errors.As(err, &fe) {
		if unreadable(key, body) {
			// A wrong type or an unknown field is a body the endpoint cannot
			// read (400), like everywhere else in the API; only a readable
			// value that fails validation is a 422.
			return jsonhttp.BadRequest(fe.Field, "%s", fe.Error())
		}
		return jsonhttp.Invalid(fe.Field, "%s", fe.Error())
	}
	if err != nil {
		return err
	}
	if err := config.CheckURLs(key, value, a.egress.CheckURL); errors.As(err, &fe) {
		return jsonhttp.Invalid(fe.Field, "%s", fe.Error())
	}
	if err := a.checkCRM(r.Context(), in, key, value); err != nil {
		return err
	}
	if err := a.store.PutConfig(r.Context(), actor(r.Context()), in.ID, key, value); err != nil {
		return err
	}
	a.onIntegrationChange(in.Slug)
	a.kicker.Kick(in.ID)
	jsonhttp.WriteJSON(w, http.StatusOK, value)
	return nil
}

// checkFreeFormQuota refuses a free-form value over its size, or a new
// free-form key beyond the count.
func (a *API) checkFreeFormQuota(r *http.Request, integrationID uuid.UUID, key string, body []byte) error {
	if len(body) > MaxFreeFormValueSize {
		return jsonhttp.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "", "a config value is at most %d bytes", MaxFreeFormValueSize)
	}
	cfg, err := a.store.Config(r.Context(), integrationID)
	if err != nil {
		return err
	}
	if _, exists := cfg.Raw[key]; exists {
		return nil
	}
	count := 0
	for k := range cfg.Raw {
		if !config.IsKnown(k) {
			count++
		}
	}
	if count >= MaxFreeFormKeys {
		return jsonhttp.Errorf(http.StatusUnprocessableEntity, "quota_exceeded", "key",
			"an integration has at most %d free-form config keys", MaxFreeFormKeys)
	}
	return nil
}

// unreadable reports whether body does not even decode strictly into the Go
// type of a known key (config.Normalize names the field either way).
func unreadable(key string, body []byte) bool {
	def, ok := config.Defaults()[key]
	if key == config.KeyData {
		def, ok = config.Data{}, true
	}
	if !ok {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	return d.Decode(reflect.New(reflect.TypeOf(def)).Interface()) != nil
}

func (a *API) deleteConfigKey(w http.ResponseWriter, r *http.Request) error {
	in, key, err := a.configKey(r)
	if err != nil {
		return err
	}
	if err := a.store.DeleteConfig(r.Context(), actor(r.Context()), in.ID, key); err != nil {
		return err
	}
	a.onIntegrationChange(in.Slug)
	cfg, err := a.store.Config(r.Context(), in.ID)
	if err != nil {
		return err
	}
	v, ok := cfg.Effective()[key]
	if !ok {
		jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"success": true})
		return nil
	}
	jsonhttp.WriteJSON(w, http.StatusOK, v)
	return nil
}
