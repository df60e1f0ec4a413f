package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// checkCRM asks the CRM whether the integration's CRM configuration, with
// value as the new value of key, works, before it is stored: for NetHunt,
// its credentials, folder and the field names crm_fields maps. A refusal
// is a 422 naming what is wrong; NetHunt not answering is a 503.
func (a *API) checkCRM(ctx context.Context, in store.Integration, key string, value json.RawMessage) error {
	if key != config.KeyCRM && key != config.KeyCRMFields {
		return nil
	}
	cfg, err := a.store.Config(ctx, in.ID)
	if err != nil {
		return err
	}
	stored := map[string]json.RawMessage{}
	for k, v := range cfg.Raw {
		stored[k] = v
	}
	stored[key] = value
	cfg = config.Decode(stored)
	if cfg.CRM.Kind != "nethunt" {
		return nil
	}
	secrets, err := a.crmSecrets(ctx, in, cfg.CRM)
	if err != nil {
		return err
	}
	err = crm.CheckNetHunt(ctx, cfg.CRM, cfg.CRMFields, secrets[crm.SecretNetHuntEmail], secrets[crm.SecretNetHuntAPIKey], a.httpClient)
	var setup *crm.SetupError
	switch {
	case errors.As(err, &setup):
		return jsonhttp.Invalid(setup.Field, "%s", setup.Message)
	case err != nil:
		a.log.Warn().Err(err).Str("integration_id", in.ID.String()).Msg("could not check the NetHunt configuration")
		return jsonhttp.Unavailable("NetHunt, asked to check this configuration,")
	}
	return nil
}

// crmSecrets are the values of the secrets the CRM needs, "" for those not set.
func (a *API) crmSecrets(ctx context.Context, in store.Integration, cfg config.CRM) (map[string]string, error) {
	secrets := map[string]string{}
	for _, k := range crm.SecretsFor(cfg) {
		v, err := a.store.SecretValue(ctx, in.ID, k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		secrets[k] = v
	}
	return secrets, nil
}

// crmFieldNames is GET /api/integrations/{id}/crm/fields: the field names
// of the stored NetHunt folder, for choosing crm_fields. Another CRM is a
// 409; NetHunt refusing is a 422 naming the secret or config field at
// fault; NetHunt not answering is a 503 saying how, never what it said.
func (a *API) crmFieldNames(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	cfg, err := a.store.Config(r.Context(), in.ID)
	if err != nil {
		return err
	}
	if cfg.CRM.Kind != "nethunt" {
		return jsonhttp.Errorf(http.StatusConflict, "conflict", "crm.kind", "field names can be read from a NetHunt CRM only")
	}
	secrets, err := a.crmSecrets(r.Context(), in, cfg.CRM)
	if err != nil {
		return err
	}
	names, err := crm.NetHuntFieldNames(r.Context(), cfg.CRM, cfg.CRMFields, secrets[crm.SecretNetHuntEmail], secrets[crm.SecretNetHuntAPIKey], a.httpClient)
	var setup *crm.SetupError
	switch {
	case errors.As(err, &setup):
		return jsonhttp.Invalid(setup.Field, "%s", setup.Message)
	case err != nil:
		a.log.Warn().Err(err).Str("integration_id", in.ID.String()).Msg("could not read NetHunt's field names")
		return jsonhttp.Errorf(http.StatusServiceUnavailable, "unavailable", "",
			"NetHunt did not list the folder's fields (%s); retry later", egress.Describe(err))
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]any{"fields": names})
	return nil
}
