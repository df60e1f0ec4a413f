// Package api is the admin API (contract §3): integrations, their config
// and secrets, and the calls, scoped to the owner of the bearer token.
// Another owner's resource is a 404, never a 403, so ids do not leak.
package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/web/apidocs"
)

// Kicker asks dispatchers to look at an integration (after a cancel frees
// a slot, or a config change opens dialling).
type Kicker interface{ Kick(integrationID uuid.UUID) }

// API serves /api/.
type API struct {
	store  *store.Store
	kicker Kicker
	log    zerolog.Logger
	now    func() time.Time
	// onIntegrationChange lets the webhook directory forget a cached slug.
	onIntegrationChange func(slug string)
	// invoker runs built-in handlers; httpClient fetches specs for
	// sync-handlers.
	invoker    Invoker
	httpClient *http.Client
	// deadLetters lists and replays dead letters; nil answers 503.
	deadLetters DeadLetters
	// egress checks integration-supplied URLs when they are configured.
	egress egress.Policy
	// patterns are the routes Register added, for /api/openapi.json.
	patterns []string
}

// Deps are the API's collaborators.
type Deps struct {
	Store               *store.Store
	Kicker              Kicker
	Log                 zerolog.Logger
	Now                 func() time.Time
	OnIntegrationChange func(slug string)
	// Invoker runs built-in handlers (POST /api/handlers/{id}/invoke).
	Invoker Invoker
	// HTTPClient fetches OpenAPI documents for sync-handlers; nil gets one
	// under Egress.
	HTTPClient *http.Client
	// DeadLetters lists and replays dead letters.
	DeadLetters DeadLetters
	// Egress is the outbound policy integration URLs are checked against.
	Egress egress.Policy
}

// New returns the admin API.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.OnIntegrationChange == nil {
		d.OnIntegrationChange = func(string) {}
	}
	if d.HTTPClient == nil {
		d.HTTPClient = egress.NewClient(d.Egress, SpecFetchTimeoutDefault)
	}
	return &API{store: d.Store, kicker: d.Kicker, log: d.Log, now: d.Now, onIntegrationChange: d.OnIntegrationChange,
		invoker: d.Invoker, httpClient: d.HTTPClient, deadLetters: d.DeadLetters, egress: d.Egress}
}

type ownerKey struct{}

// owner is the authenticated owner of the request.
func owner(ctx context.Context) string { return ctx.Value(ownerKey{}).(string) }

// Register adds the routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	route := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		a.patterns = append(a.patterns, pattern)
		mux.Handle(pattern, a.authenticated(fn))
	}
	route("GET /api/integrations", a.listIntegrations)
	route("POST /api/integrations", a.createIntegration)
	route("GET /api/integrations/{id}", a.getIntegration)
	route("PATCH /api/integrations/{id}", a.updateIntegration(false))
	route("PUT /api/integrations/{id}", a.updateIntegration(true))
	route("DELETE /api/integrations/{id}", a.deleteIntegration)
	route("POST /api/integrations/{id}/rotate-webhook-token", a.rotateWebhookToken)

	route("GET /api/integrations/{id}/config", a.getConfig)
	route("GET /api/integrations/{id}/config/{key}", a.getConfigKey)
	route("PUT /api/integrations/{id}/config/{key}", a.putConfigKey)
	route("DELETE /api/integrations/{id}/config/{key}", a.deleteConfigKey)
	route("GET /api/integrations/{id}/crm/fields", a.crmFieldNames)

	for _, kind := range []string{store.KindSecret, store.KindCredential} {
		base := "/api/integrations/{id}/" + kind + "s"
		route("GET "+base, a.listSecrets(kind))
		route("POST "+base, a.createSecret(kind))
		route("PUT "+base+"/{secretId}", a.updateSecret(kind))
		route("DELETE "+base+"/{secretId}", a.deleteSecret(kind))
	}
	route("POST /api/core/secrets", a.coreCreateSecret)
	route("GET /api/core/secrets", a.coreListSecrets)

	route("GET /api/calls", a.listCalls)
	route("GET /api/calls/{id}", a.getCall)
	route("POST /api/calls/{id}/cancel", a.cancelCall)
	route("GET /api/integrations/{id}/stats", a.stats)
	route("GET /api/integrations/{id}/timeseries", a.integrationTimeseries)

	route("GET /api/handlers", a.listHandlers)
	route("POST /api/handlers", a.createHandler(false))
	route("GET /api/handlers/{id}", a.getHandler)
	route("PATCH /api/handlers/{id}", a.updateHandler(false))
	route("DELETE /api/handlers/{id}", a.deleteHandler(false))
	route("POST /api/handlers/{id}/invoke", a.invokeHandler)
	route("GET /api/integrations/{id}/handlers", a.listIntegrationHandlers)
	route("POST /api/integrations/{id}/handlers", a.createHandler(true))
	route("PUT /api/integrations/{id}/handlers/{handlerId}", a.updateHandler(true))
	route("DELETE /api/integrations/{id}/handlers/{handlerId}", a.deleteHandler(true))
	route("POST /api/integrations/{id}/sync-handlers", a.syncHandlers)

	route("POST /api/integrations/{id}/campaigns", a.createCampaign)
	route("GET /api/campaigns", a.listCampaigns)
	route("GET /api/campaigns/{id}", a.getCampaign)
	route("PATCH /api/campaigns/{id}", a.updateCampaign)
	route("POST /api/campaigns/{id}/recipients", a.uploadRecipients)
	route("POST /api/campaigns/{id}/pause", a.changeCampaignStatus(store.CampaignPause))
	route("POST /api/campaigns/{id}/resume", a.changeCampaignStatus(store.CampaignResume))
	route("POST /api/campaigns/{id}/cancel", a.changeCampaignStatus(store.CampaignCancel))
	route("GET /api/campaigns/{id}/calls.csv", a.campaignCallsCSV)
	route("GET /api/campaigns/{id}/timeseries", a.campaignTimeseries)

	route("GET /api/integrations/{id}/suppressions", a.listSuppressions)
	route("POST /api/integrations/{id}/suppressions", a.addSuppressions)
	route("DELETE /api/integrations/{id}/suppressions/{phone}", a.deleteSuppression)
	route("GET /api/suppressions", a.listSuppressions)
	route("POST /api/suppressions", a.addSuppressions)
	route("DELETE /api/suppressions/{phone}", a.deleteSuppression)

	route("GET /api/people/{phone}", a.getPerson)
	route("DELETE /api/people/{phone}", a.erasePerson)

	route("GET /api/integrations/{id}/audit-logs", a.integrationAuditLog)
	route("GET /api/audit-logs", a.ownerAuditLog)
	route("GET /api/dead-letters", a.listDeadLetters)
	route("POST /api/dead-letters/replay", a.replayDeadLetters)
	route("GET /api/tokens", a.listTokens)
	route("DELETE /api/tokens/{id}", a.revokeToken)

	// The admin API's own description needs no token: tools load it, and
	// people read it at /api/docs.
	a.patterns = append(a.patterns, "GET "+OpenAPIPath, "GET "+DocsPath)
	mux.HandleFunc("GET "+OpenAPIPath, a.serveOpenAPI)
	mux.HandleFunc("GET "+DocsPath, func(w http.ResponseWriter, _ *http.Request) { apidocs.ServePage(w, "callqueue admin API") })
	mux.Handle("GET "+DocsPath+"/assets/{file}", apidocs.Assets())
}

// authenticated resolves the bearer token to its owner and writes errors
// in the contract's shape.
func (a *API) authenticated(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if len(auth) < 8 || !strings.EqualFold(auth[:7], "bearer ") {
			jsonhttp.WriteError(w, jsonhttp.ErrUnauthorized)
			return
		}
		bearer, err := a.store.Authenticate(r.Context(), strings.TrimSpace(auth[7:]))
		if errors.Is(err, store.ErrNotFound) {
			jsonhttp.WriteError(w, jsonhttp.ErrUnauthorized)
			return
		}
		if err != nil {
			a.log.Error().Err(err).Msg("authenticate")
			jsonhttp.WriteError(w, jsonhttp.Unavailable("database"))
			return
		}
		ctx := context.WithValue(r.Context(), ownerKey{}, bearer.Owner)
		ctx = store.WithAuditSource(ctx, store.AuditSource{TokenID: bearer.TokenID, ClientIP: clientip.ClientIP(r)})
		r = r.WithContext(ctx)
		if err := checkParams(r); err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := fn(w, r); err != nil {
			a.writeError(w, r, err)
		}
	})
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var je *jsonhttp.Error
	var conflict *store.ConflictError
	var quota *store.QuotaError
	switch {
	case errors.As(err, &je):
	case errors.As(err, &quota):
		err = jsonhttp.Errorf(http.StatusUnprocessableEntity, "quota_exceeded", quota.Field, "%s", quota.Message)
	case errors.As(err, &conflict):
		err = jsonhttp.Errorf(http.StatusConflict, "conflict", conflict.Field, "%s", conflict.Message)
	case errors.Is(err, store.ErrNotFound):
		err = jsonhttp.ErrNotFound
	case errors.Is(err, context.Canceled):
		return
	default:
		// The route's pattern, not its path: a path can hold a phone number.
		a.log.Error().Err(err).Str("method", r.Method).Str("route", r.Pattern).Msg("admin api")
		if store.IsTransient(err) {
			err = jsonhttp.Unavailable("database")
		}
	}
	jsonhttp.WriteError(w, err)
}

// pathID parses a uuid path value; a malformed id is a 404 like any other
// id that names nothing.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue(name))
	if err != nil {
		return uuid.Nil, jsonhttp.ErrNotFound
	}
	return id, nil
}

// page reads limit and offset (limit 1..1000, default 50).
func page(r *http.Request) (limit, offset int, err error) {
	limit, offset = 50, 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return 0, 0, jsonhttp.BadRequest("limit", "limit must be an integer from 1 to 1000")
		}
	}
	if v := r.URL.Query().Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return 0, 0, jsonhttp.BadRequest("offset", "offset must be a non-negative integer")
		}
	}
	return limit, offset, nil
}

func readJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	body, err := jsonhttp.ReadBody(w, r, 1<<20)
	if err != nil {
		return err
	}
	return jsonhttp.Decode(body, dst)
}
