package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/webhooks"
)

// Invoker runs a built-in handler for an integration (webhooks.Handler).
type Invoker interface {
	Invoke(ctx context.Context, inv webhooks.Invocation) (any, error)
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
// call-originate queues a call and answers once JetStream has it. The
// handler options retries and timeout (handler_options.go) steer the run.
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
	var opts handlerOptions
	defaultArgs, err := takeHandlerOptions(h.DefaultArgs, "defaultArgs", &opts)
	if err != nil {
		return err
	}
	args, err := takeHandlerOptions(b.Args, "args", &opts) // args override the handler's own
	if err != nil {
		return err
	}
	payload, prefix, err := invocationPayload(defaultArgs, args)
	if err != nil {
		return err
	}
	if a.invoker == nil {
		return jsonhttp.Unavailable("handler runtime")
	}
	idemKey := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if idemKey == "" && opts.Retries > 0 && h.Name == webhooks.BuiltinCallOriginate {
		// A run that timed out may still have queued its call: the repeat
		// must name the same call, so it is queued once.
		idemKey = "invoke-" + uuid.NewString()
	}
	result, err := runWithOptions(r.Context(), opts, func(ctx context.Context) (any, error) {
		return a.invoker.Invoke(ctx, webhooks.Invocation{IntegrationID: in.ID, Slug: in.Slug, Name: h.Name,
			Payload: payload, IdempotencyKey: idemKey, TraceID: webhooks.TraceID(r), Actor: who})
	})
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
