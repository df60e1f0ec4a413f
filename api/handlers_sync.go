package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/webhooks"
)

// Sync-handlers limits.
const (
	// SpecFetchTimeoutDefault bounds fetching a spec.
	SpecFetchTimeoutDefault = 15 * time.Second
	// MaxSpecBytes bounds a spec's size.
	MaxSpecBytes = 10 << 20
)

var integrationNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

type syncBody struct {
	IntegrationName *string `json:"integrationName"`
	BaseURL         *string `json:"baseUrl"`
}

// syncedHandler is one handler in sync-handlers' answer (seed 000).
type syncedHandler struct {
	ID     uuid.UUID       `json:"id"`
	Name   string          `json:"name"`
	Method string          `json:"method"`
	URL    string          `json:"url"`
	Body   json.RawMessage `json:"body"`
	Order  int             `json:"order"`
}

// requestArgs is a synced handler's defaultArgs: the request it describes.
type requestArgs struct {
	Method string          `json:"method"`
	URL    string          `json:"url"`
	Body   json.RawMessage `json:"body"`
}

// syncHandlers is POST /api/integrations/{id}/sync-handlers (seed 000):
// one handler per operation of {baseUrl}/{integrationName}/openapi.json,
// created or updated by name in one transaction.
func (a *API) syncHandlers(w http.ResponseWriter, r *http.Request) error {
	in, err := a.integration(r)
	if err != nil {
		return err
	}
	var b syncBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	if b.IntegrationName == nil || *b.IntegrationName == "" {
		return jsonhttp.Invalid("integrationName", "integrationName is required")
	}
	if !integrationNamePattern.MatchString(*b.IntegrationName) {
		return jsonhttp.Invalid("integrationName", "integrationName must be one path segment: letters, digits, . _ -")
	}
	base := webhooks.BaseURL(r)
	if b.BaseURL != nil && *b.BaseURL != "" {
		u, err := url.Parse(*b.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return jsonhttp.Invalid("baseUrl", "baseUrl must be an http or https URL without query, fragment or credentials")
		}
		base = strings.TrimRight(u.String(), "/")
	}
	specURL := base + "/" + url.PathEscape(*b.IntegrationName) + "/openapi.json"
	var raw []byte
	field := "baseUrl" // what a 422 about the document names
	if b.BaseURL == nil || *b.BaseURL == "" {
		field = "integrationName"
		// This service's own document is built here, not fetched: the Host
		// header it would be fetched from is the client's to choose.
		if raw, err = a.ownSpec(r.Context(), *b.IntegrationName, base); err != nil {
			return err
		}
	} else {
		if err := a.egress.CheckURL(specURL); err != nil {
			return jsonhttp.Invalid("baseUrl", "baseUrl %v", err)
		}
		if raw, err = a.fetchSpec(r.Context(), specURL); err != nil {
			return err
		}
	}
	specs, err := handlersFromSpec(raw, *b.IntegrationName, field)
	if err != nil {
		return err
	}
	who := owner(r.Context())
	synced, err := a.store.SyncHandlers(r.Context(), who, actor(r.Context()), in.ID, specs)
	if err != nil {
		return err
	}
	out := struct {
		Success  bool            `json:"success"`
		Created  int             `json:"created"`
		Updated  int             `json:"updated"`
		Handlers []syncedHandler `json:"handlers"`
	}{Success: true, Handlers: []syncedHandler{}}
	for i, s := range synced {
		if s.Created {
			out.Created++
		} else {
			out.Updated++
		}
		var args requestArgs
		if err := json.Unmarshal(s.Handler.DefaultArgs, &args); err != nil {
			return err
		}
		if args.Body == nil {
			args.Body = json.RawMessage("null")
		}
		out.Handlers = append(out.Handlers, syncedHandler{ID: s.Handler.ID, Name: s.Handler.Name, Method: args.Method,
			URL: args.URL, Body: args.Body, Order: i})
	}
	a.log.Info().Str("integration_id", in.ID.String()).Str("spec", specURL).Int("created", out.Created).
		Int("updated", out.Updated).Msg("handlers synced")
	jsonhttp.WriteJSON(w, http.StatusOK, out)
	return nil
}

func badGateway(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusBadGateway, "spec_unavailable", "baseUrl", format, args...)
}

// fetchSpec GETs an OpenAPI document; what cannot be had is a 502.
func (a *API) fetchSpec(ctx context.Context, specURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, SpecFetchTimeoutDefault)
	defer cancel()
	// The owner names the spec's location (seed 000): fetching it is the point.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, specURL, nil) //nolint:gosec // G704: see above
	if err != nil {
		return nil, badGateway("cannot request %s: %v", specURL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.httpClient.Do(req) //nolint:gosec // G704: the owner's own spec URL, under the egress policy, bounded by timeout and size
	if err != nil {
		// The transport's words name addresses and ports: not shown back.
		a.log.Warn().Err(egress.Fail("spec fetch", err)).Msg("spec fetch failed") // without the URL's query
		return nil, badGateway("fetching the spec failed: %s", egress.Describe(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, badGateway("fetching the spec failed: %s", egress.BadStatus(resp.StatusCode))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxSpecBytes+1))
	if err != nil {
		a.log.Warn().Err(err).Msg("spec fetch failed")
		return nil, badGateway("reading the spec failed: %s", egress.Describe(err))
	}
	if len(raw) > MaxSpecBytes {
		return nil, badGateway("%s is larger than %d bytes", specURL, MaxSpecBytes)
	}
	return raw, nil
}

// ownSpec is the OpenAPI document this service serves for slug, when the
// integration exists.
func (a *API) ownSpec(ctx context.Context, slug, base string) ([]byte, error) {
	if _, err := a.store.IntegrationBySlug(ctx, slug); errors.Is(err, store.ErrNotFound) {
		return nil, badGateway("no integration %q here", slug)
	} else if err != nil {
		return nil, err
	}
	return json.Marshal(webhooks.OpenAPI(slug, base))
}

func invalidSpec(format string, args ...any) error {
	return jsonhttp.Errorf(http.StatusUnprocessableEntity, "invalid_spec", "", format, args...)
}
