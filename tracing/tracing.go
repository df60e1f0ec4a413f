// Package tracing owns callqueue's OpenTelemetry traces (contract §10): the
// tracer provider, configured by the standard OTEL_* variables and
// exporting over OTLP/HTTP; the W3C trace-context propagator; and the
// helpers that carry a trace through HTTP requests, JetStream headers and
// Postgres rows. Other packages only start spans from a context.
//
// Without OTEL_EXPORTER_OTLP_ENDPOINT tracing is off: spans are no-ops,
// nothing is injected or extracted, and the call history keeps the trace
// ids it had before (a request id, or a random one).
package tracing

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of exported spans unless
// OTEL_SERVICE_NAME says otherwise.
const ServiceName = "callqueue"

// instrumentation names the tracer.
const instrumentation = "github.com/callqueue/callqueue"

// Attribute keys spans carry (contract §10). Never a phone number, token,
// secret or body.
const (
	KeyIntegrationID = attribute.Key("callqueue.integration_id")
	KeyCallID        = attribute.Key("callqueue.call_id")
	KeyAttempt       = attribute.Key("callqueue.attempt")
	KeyOutcome       = attribute.Key("callqueue.outcome")
	KeyEvent         = attribute.Key("callqueue.event")
	KeyBatch         = attribute.Key("callqueue.batch_size")
	KeyPeer          = attribute.Key("callqueue.peer")
)

// state is what Install set: the tracer spans start from, or nil while
// tracing is off (the zero state, so nothing needs initialising).
var state atomic.Pointer[trace.Tracer]

var propagator = propagation.TraceContext{}

// Enabled reports whether spans are recorded and exported.
func Enabled() bool { return state.Load() != nil }

// Install makes tp the provider of every span started after it; nil turns
// tracing off. It returns a function that puts back what was there (tests).
func Install(tp trace.TracerProvider) (restore func()) {
	var next *trace.Tracer
	if tp != nil {
		t := tp.Tracer(instrumentation)
		next = &t
	}
	prev := state.Swap(next)
	return func() { state.Store(prev) }
}

// Configured reports whether the environment asks for traces: an OTLP
// endpoint is set (for traces or all signals), and neither
// OTEL_SDK_DISABLED nor OTEL_TRACES_EXPORTER=none turns them off.
func Configured() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")), "none") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs an OTLP/HTTP exporting provider when Configured, and
// returns its shutdown, which flushes the spans not yet sent. The exporter
// and the SDK read the other OTEL_* variables themselves (headers,
// timeout, compression, sampler, batching, resource attributes). Off, it
// installs nothing and its shutdown does nothing.
func Setup(ctx context.Context, version string) (shutdown func(context.Context) error, err error) {
	if !Configured() {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithAttributes(
		attribute.String("service.name", ServiceName), attribute.String("service.version", version)),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	restore := Install(tp)
	return func(ctx context.Context) error {
		restore()
		return tp.Shutdown(ctx)
	}, nil
}

// noopSpan is what Start returns while tracing is off, boxed once so
// that returning it allocates nothing.
var noopSpan trace.Span = noop.Span{}

// Start starts a span under the one in ctx (if any). Off, it returns ctx
// itself and a no-op span, and allocates nothing; attributes are set with
// Call and Outcome, which cost nothing off either.
func Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	t := state.Load()
	if t == nil {
		return ctx, noopSpan
	}
	return (*t).Start(ctx, name, trace.WithSpanKind(kind))
}

// StartAt is Start for a step that began at start, before it was known
// which trace it belongs to (a claim of several calls: each call's trace
// gets its span of it).
func StartAt(ctx context.Context, name string, kind trace.SpanKind, start time.Time) (context.Context, trace.Span) {
	t := state.Load()
	if t == nil {
		return ctx, noopSpan
	}
	return (*t).Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(start))
}

// StartLinked starts a span under the one in ctx that links to other
// traces: a batch's span linked to the trace of each of its messages.
func StartLinked(ctx context.Context, name string, kind trace.SpanKind, links []trace.Link) (context.Context, trace.Span) {
	t := state.Load()
	if t == nil {
		return ctx, noopSpan
	}
	return (*t).Start(ctx, name, trace.WithSpanKind(kind), trace.WithLinks(links...))
}

// Call labels span with the call it works on (uuid.Nil and attempt 0 are
// left out).
func Call(span trace.Span, integrationID, callID uuid.UUID, attempt int) {
	if !span.IsRecording() {
		return
	}
	if integrationID != uuid.Nil {
		span.SetAttributes(KeyIntegrationID.String(integrationID.String()))
	}
	if callID != uuid.Nil {
		span.SetAttributes(KeyCallID.String(callID.String()))
	}
	if attempt > 0 {
		span.SetAttributes(KeyAttempt.Int(attempt))
	}
}

// Outcome labels span with an outcome: a call's (callstate's words), or a
// step's own result ("accepted", "no_record").
func Outcome(span trace.Span, outcome string) {
	if outcome != "" && span.IsRecording() {
		span.SetAttributes(KeyOutcome.String(outcome))
	}
}

// Fail marks span failed with desc, a description fit for any reader
// (egress.Describe's words): an error's own text may carry an address, a
// number or a peer's bytes.
func Fail(span trace.Span, desc string) {
	if span.IsRecording() {
		span.SetStatus(codes.Error, desc)
	}
}

// TraceID is the trace id of the span in ctx, in hex, or "" when there is
// none (tracing off).
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// Link is a link to the span whose context Traceparent wrote, or false.
func Link(traceparent string) (trace.Link, bool) {
	sc := trace.SpanContextFromContext(FromTraceparent(context.Background(), traceparent))
	return trace.Link{SpanContext: sc}, sc.IsValid()
}
