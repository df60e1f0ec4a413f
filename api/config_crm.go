package api

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/crm"
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
	secrets := map[string]string{}
	for _, k := range crm.SecretsFor(cfg.CRM) {
		v, err := a.store.SecretValue(ctx, in.ID, k)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		secrets[k] = v
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
