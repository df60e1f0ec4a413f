package webhooks

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// Built-in handler names: the four voice webhooks, the scheduled retry
// run, setup and health (seed 002). The handlers registry of the admin API
// accepts any name; only these can be invoked.
const (
	BuiltinCallOriginate = "call-originate"
	BuiltinCallEvents    = "call-events"
	BuiltinAgentInit     = "agent-init"
	BuiltinAgentPostcall = "agent-postcall"
	BuiltinRetry         = "retry"
	BuiltinSetup         = "setup"
	BuiltinHealth        = "health"
)

// Builtins lists the built-in handler names.
var Builtins = []string{BuiltinCallOriginate, BuiltinCallEvents, BuiltinAgentInit, BuiltinAgentPostcall,
	BuiltinRetry, BuiltinSetup, BuiltinHealth}

// Invocation asks for one run of a built-in handler on behalf of the admin
// API, which has already authenticated the integration's owner.
type Invocation struct {
	IntegrationID uuid.UUID
	Slug          string
	// Name is the built-in to run (Builtins).
	Name string
	// Payload is the body the built-in's endpoint would receive.
	Payload json.RawMessage
	// IdempotencyKey is call-originate's Idempotency-Key.
	IdempotencyKey string
	TraceID        string
	// Actor is who asked, for the audit log (setup).
	Actor string
}

// Invoke runs a built-in through the same code as its endpoint — so
// call-originate is stored in JetStream exactly like the webhook's, and
// answers only once it is — and returns the built-in's answer. Errors are
// in the contract's shape (*jsonhttp.Error) where the built-in's endpoint
// would answer one; an unknown name is a 422 unknown_handler.
func (h *Handler) Invoke(ctx context.Context, inv Invocation) (any, error) {
	if !slices.Contains(Builtins, inv.Name) {
		return nil, jsonhttp.Errorf(http.StatusUnprocessableEntity, "unknown_handler", "",
			"%q is not a built-in handler, so it cannot be invoked; built-ins: %s", inv.Name, strings.Join(Builtins, ", "))
	}
	in, err := h.integrationByID(ctx, inv.Slug, inv.IntegrationID)
	if err != nil {
		return nil, err
	}
	ctx, span := tracing.Start(ctx, "invoke "+inv.Name, trace.SpanKindInternal)
	defer span.End()
	traceID := cmp.Or(tracing.TraceID(ctx), inv.TraceID)
	if traceID == "" {
		traceID = TraceID(&http.Request{Header: http.Header{}})
	}
	header := http.Header{}
	if inv.IdempotencyKey != "" {
		header.Set("Idempotency-Key", inv.IdempotencyKey)
	}
	// The admin API has authenticated the integration's owner.
	r := request{in: in, body: inv.Payload, header: header, query: func(string) string { return "" }, traceID: traceID,
		authenticated: true, logger: h.log.With().Str("invoked", inv.Name).Logger()}
	var answer any
	switch inv.Name {
	case BuiltinCallOriginate:
		_, answer, err = h.callOriginate(ctx, r)
	case BuiltinCallEvents:
		_, answer, err = h.callEvents(ctx, r)
	case BuiltinAgentInit:
		_, answer, err = h.agentInit(ctx, r)
	case BuiltinAgentPostcall:
		_, answer, err = h.agentPostcall(ctx, r)
	case BuiltinRetry:
		n, rerr := h.retries.RunRetries(ctx, in.ID)
		if rerr != nil {
			r.log(zerolog.ErrorLevel).Err(rerr).Msg("retry run failed")
			return nil, jsonhttp.Unavailable("database")
		}
		answer = map[string]any{"success": true, "processed": n}
	case BuiltinSetup:
		answer, err = h.runSetup(ctx, r, inv.Actor)
	case BuiltinHealth:
		_, answer, err = h.integrationHealth(ctx, r)
	}
	return answer, err
}

// integrationByID finds the integration through the directory, as the
// endpoints do, and makes sure the slug still names it.
func (h *Handler) integrationByID(ctx context.Context, slug string, id uuid.UUID) (Integration, error) {
	for range 2 {
		in, err := h.dir.Lookup(ctx, slug)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			h.log.Error().Err(err).Msg("integration lookup failed")
			return Integration{}, jsonhttp.Unavailable("database")
		case in.ID == id:
			return in, nil
		}
		h.dir.Forget(slug) // a slug renamed a moment ago: look again
	}
	return Integration{}, jsonhttp.ErrNotFound
}
