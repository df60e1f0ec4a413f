package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/go-yaml"
	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/pb33f/libopenapi/datamodel/low"
	lowv3 "github.com/pb33f/libopenapi/datamodel/low/v3"

	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/webhooks"
)

// Invoker runs a built-in handler for an integration (webhooks.Handler).
type Invoker interface {
	Invoke(ctx context.Context, inv webhooks.Invocation) (any, error)
}

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

// invokeBody is POST /api/handlers/{id}/invoke's body.
type invokeBody struct {
	Args json.RawMessage `json:"args"`
}

// invokeHandler runs the built-in named like the handler, for the
// handler's integration, with the handler's defaultArgs overlaid by args
// (RFC 7386 JSON merge patch: objects merge, null removes). A synced
// handler's defaultArgs describe the request ({method, url, body}): the
// built-in then gets the body. Built-ins answer as their endpoints would:
// call-originate queues a call and answers once JetStream has it.
func (a *API) invokeHandler(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	who := owner(r.Context())
	h, err := a.store.GetHandler(r.Context(), who, uuid.Nil, id)
	if err != nil {
		return err
	}
	var b invokeBody
	if err := readJSON(w, r, &b); err != nil {
		return err
	}
	if !isNull(b.Args) && !isObject(b.Args) {
		return jsonhttp.Invalid("args", "args must be an object")
	}
	in, err := a.store.GetIntegration(r.Context(), who, h.IntegrationID)
	if err != nil {
		return err
	}
	payload, prefix, err := invocationPayload(h.DefaultArgs, b.Args)
	if err != nil {
		return err
	}
	if a.invoker == nil {
		return jsonhttp.Unavailable("handler runtime")
	}
	idemKey := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	result, err := a.invoker.Invoke(r.Context(), webhooks.Invocation{IntegrationID: in.ID, Slug: in.Slug, Name: h.Name,
		Payload: payload, IdempotencyKey: idemKey, TraceID: webhooks.TraceID(r), Actor: who})
	var je *jsonhttp.Error
	if errors.As(err, &je) && je.Field != "" && je.Field != "Idempotency-Key" {
		// The built-in names a field of its body; the caller sent it in args.
		copied := *je
		copied.Field = prefix + je.Field
		err = &copied
	}
	if err != nil {
		return err
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]any{"success": true, "handler": h.Name, "result": result})
	return nil
}

// invocationPayload overlays args on defaultArgs and returns the built-in's
// body, with the JSON path of that body in the invoke request.
func invocationPayload(defaultArgs, args json.RawMessage) (json.RawMessage, string, error) {
	var base, patch any
	if err := decodeNumbers(defaultArgs, &base); err != nil {
		return nil, "", fmt.Errorf("handler defaultArgs: %w", err)
	}
	if !isNull(args) {
		if err := decodeNumbers(args, &patch); err != nil {
			return nil, "", jsonhttp.BadRequest("args", "args is not valid JSON")
		}
	}
	merged, prefix := mergePatch(base, patch), "args."
	if req, ok := base.(map[string]any); ok && isRequestArgs(req) {
		// A request description (sync-handlers): the built-in gets its
		// body, which args overlay, unless they describe the request too.
		if p, ok := patch.(map[string]any); ok && (p["method"] != nil || p["url"] != nil || p["body"] != nil) {
			merged, prefix = merged.(map[string]any)["body"], "args.body."
		} else {
			merged = mergePatch(req["body"], patch)
		}
	}
	if merged == nil {
		merged = map[string]any{}
	}
	out, err := json.Marshal(merged)
	return out, prefix, err
}

// isRequestArgs reports whether defaultArgs describe a request, as those
// of sync-handlers do: {method, url, body}.
func isRequestArgs(m map[string]any) bool {
	_, hasMethod := m["method"].(string)
	_, hasURL := m["url"].(string)
	return hasMethod && hasURL
}

func decodeNumbers(raw json.RawMessage, dst *any) error {
	if isNull(raw) {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(dst)
}

// mergePatch applies patch to target as an RFC 7386 JSON merge patch.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		if patch == nil {
			return target
		}
		return patch
	}
	out := map[string]any{}
	if t, ok := target.(map[string]any); ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = mergePatch(out[k], v)
	}
	return out
}

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
	if b.BaseURL == nil || *b.BaseURL == "" {
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
	specs, err := handlersFromSpec(raw, *b.IntegrationName)
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
		return nil, badGateway("fetching %s failed: %s", specURL, egress.Describe(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, badGateway("%s answered %d", specURL, resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxSpecBytes+1))
	if err != nil {
		return nil, badGateway("reading %s failed: %s", specURL, egress.Describe(err))
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

// handlersFromSpec derives one handler per path and method of an OpenAPI
// 3.x document, in the order they appear: named after the last literal
// path segment (the operationId, or method and segment, when that is taken
// or there is none), with the request it describes as defaultArgs.
func handlersFromSpec(raw []byte, integrationName string) (specs []store.HandlerSpec, err error) {
	defer func() {
		// A library panic on a hostile document is a document we cannot read.
		if v := recover(); v != nil {
			specs, err = nil, invalidSpec("the OpenAPI document cannot be read: %v", v)
		}
	}()
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		return nil, invalidSpec("not an OpenAPI document: %v", err)
	}
	if v := doc.GetVersion(); !strings.HasPrefix(v, "3.") {
		return nil, invalidSpec("OpenAPI version %q is not supported: 3.0 or 3.1 are", v)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, invalidSpec("the OpenAPI document cannot be read: %v", err)
	}
	if model == nil || model.Model.Paths == nil || model.Model.Paths.PathItems == nil {
		return []store.HandlerSpec{}, nil
	}
	taken := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for _, o := range operationsInOrder(item) {
			name := handlerName(path, o.method, o.op.OperationId, taken)
			taken[name] = true
			budget := &exampleBudget{nodes: MaxExampleNodes}
			body := bodyExample(o.op.RequestBody, budget)
			if budget.nodes < 0 || len(body) > MaxExampleBytes {
				// Nested $refs multiply: a few KB of spec can describe
				// billions of nodes. The example is refused, not truncated.
				return nil, invalidSpec("the example body of %s %s is larger than %d properties or %d bytes",
					strings.ToUpper(o.method), path, MaxExampleNodes, MaxExampleBytes)
			}
			args, err := json.Marshal(requestArgs{Method: strings.ToUpper(o.method),
				URL: integrationName + "/" + strings.TrimPrefix(path, "/"), Body: body})
			if err != nil {
				return nil, invalidSpec("the example of %s %s cannot be encoded: %v", strings.ToUpper(o.method), path, err)
			}
			specs = append(specs, store.HandlerSpec{Name: name, DefaultArgs: args})
		}
	}
	return specs, nil
}

type methodOp struct {
	method string
	op     *v3.Operation
	line   int
	column int
}

// operationsInOrder lists a path item's operations in document order
// (line, then column: a one-line JSON document has one line).
func operationsInOrder(item *v3.PathItem) []methodOp {
	var out []methodOp
	lowItem := item.GoLow()
	refs := map[string]low.NodeReference[*lowv3.Operation]{}
	if lowItem != nil {
		refs = map[string]low.NodeReference[*lowv3.Operation]{"get": lowItem.Get, "put": lowItem.Put, "post": lowItem.Post,
			"delete": lowItem.Delete, "options": lowItem.Options, "head": lowItem.Head, "patch": lowItem.Patch, "trace": lowItem.Trace}
	}
	for method, op := range item.GetOperations().FromOldest() {
		m := methodOp{method: strings.ToLower(method), op: op}
		if ref, ok := refs[m.method]; ok && ref.KeyNode != nil {
			m.line, m.column = ref.KeyNode.Line, ref.KeyNode.Column
		}
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b methodOp) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return a.column - b.column
	})
	return out
}

var nonNameChars = regexp.MustCompile(`[^A-Za-z0-9._:-]+`)

// sanitizeName makes s a valid handler name ("" if nothing is left).
func sanitizeName(s string) string {
	s = strings.Trim(nonNameChars.ReplaceAllString(s, "-"), "-._:")
	if len(s) > 128 {
		s = strings.TrimRight(s[:128], "-._:")
	}
	return s
}

func handlerName(path, method, operationID string, taken map[string]bool) string {
	segments := strings.Split(strings.Trim(path, "/"), "/")
	last := segments[len(segments)-1]
	var literal string // the last segment that is not a parameter
	for _, seg := range slices.Backward(segments) {
		if seg != "" && !strings.HasPrefix(seg, "{") {
			literal = seg
			break
		}
	}
	candidates := []string{sanitizeName(literal), sanitizeName(operationID)}
	if literal != last {
		// /orders/{id}: "orders" would misname it; the operation knows better.
		candidates[0], candidates[1] = candidates[1], candidates[0]
	}
	candidates = append(candidates, sanitizeName(strings.ToLower(method)+"-"+literal), sanitizeName(strings.ToLower(method)+"-"+path))
	for _, c := range candidates {
		if c != "" && !taken[c] {
			return c
		}
	}
	base := cmpOr(candidates...)
	if base == "" {
		base = "handler"
	}
	for n := 2; ; n++ {
		if c := fmt.Sprintf("%s-%d", base, n); !taken[c] {
			return c
		}
	}
}

func cmpOr(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// bodyExample is seed 000's body example of a request body, by priority:
// (1) the JSON media type's example, (2) its schema's example (or first of
// examples), (3) an object built from the schema's properties' examples or
// defaults (their type's placeholder when they have neither). nil when the
// operation has no JSON body.
func bodyExample(rb *v3.RequestBody, budget *exampleBudget) json.RawMessage {
	if rb == nil || rb.Content == nil {
		return nil
	}
	media := rb.Content.GetOrZero("application/json")
	if media == nil {
		for typ, m := range rb.Content.FromOldest() {
			if strings.Contains(typ, "json") {
				media = m
				break
			}
		}
	}
	if media == nil {
		return nil
	}
	if v, ok := nodeValue(media.Example); ok {
		return mustJSON(v)
	}
	if media.Schema == nil {
		return nil
	}
	schema := media.Schema.Schema()
	if schema == nil {
		return nil
	}
	if v, ok := nodeValue(schema.Example); ok {
		return mustJSON(v)
	}
	if len(schema.Examples) > 0 {
		if v, ok := nodeValue(schema.Examples[0]); ok {
			return mustJSON(v)
		}
	}
	if v, ok := fromProperties(schema, 0, budget); ok {
		return mustJSON(v)
	}
	return nil
}

// Bounds of a built example body: properties visited and encoded size.
const (
	MaxExampleNodes = 5000
	MaxExampleBytes = 256 << 10
)

// exampleBudget counts the properties an example may still visit; below
// zero, the example was too large.
type exampleBudget struct{ nodes int }

func mustJSON(v any) json.RawMessage {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return raw
}

// nodeValue decodes an example or default into plain JSON values.
func nodeValue(n *yaml.Node) (any, bool) {
	if n == nil {
		return nil, false
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, false
	}
	return jsonable(v), true
}

// jsonable turns YAML-decoded values (map[any]any) into JSON ones.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case map[any]any:
		out := map[string]any{}
		for k, e := range t {
			out[fmt.Sprint(k)] = jsonable(e)
		}
		return out
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	}
	return v
}

// fromProperties builds an object from a schema's properties (and those
// of its allOf parts).
func fromProperties(schema *base.Schema, depth int, budget *exampleBudget) (any, bool) {
	if schema == nil || depth > 5 || budget.nodes < 0 {
		return nil, false
	}
	out := map[string]any{}
	found := false
	add := func(s *base.Schema) {
		if s == nil || s.Properties == nil {
			return
		}
		for name, proxy := range s.Properties.FromOldest() {
			if budget.nodes--; budget.nodes < 0 {
				return
			}
			found = true
			out[name] = propertyValue(proxy.Schema(), depth, budget)
		}
	}
	add(schema)
	for _, part := range schema.AllOf {
		add(part.Schema())
	}
	return out, found
}

func propertyValue(p *base.Schema, depth int, budget *exampleBudget) any {
	if p == nil {
		return nil
	}
	if v, ok := nodeValue(p.Example); ok {
		return v
	}
	if len(p.Examples) > 0 {
		if v, ok := nodeValue(p.Examples[0]); ok {
			return v
		}
	}
	if v, ok := nodeValue(p.Default); ok {
		return v
	}
	if len(p.Enum) > 0 {
		if v, ok := nodeValue(p.Enum[0]); ok {
			return v
		}
	}
	if v, ok := fromProperties(p, depth+1, budget); ok {
		return v
	}
	typ := ""
	for _, t := range p.Type {
		if t != "null" {
			typ = t
			break
		}
	}
	switch typ {
	case "string":
		return "string"
	case "integer", "number":
		return 0
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return map[string]any{}
	}
	return nil
}
