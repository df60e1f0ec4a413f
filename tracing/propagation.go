package tracing

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// W3C trace-context header names.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// natsCarrier reads and writes trace context in a JetStream message's
// headers. NATS header names are case-sensitive: the W3C names are used
// as they are written, lower case.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c natsCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectNATS writes the trace context of ctx into h (nothing while tracing
// is off or ctx has no span).
func InjectNATS(ctx context.Context, h nats.Header) {
	if !Enabled() {
		return
	}
	propagator.Inject(ctx, natsCarrier(h))
}

// ExtractNATS returns ctx continuing the trace context in h.
func ExtractNATS(ctx context.Context, h nats.Header) context.Context {
	if !Enabled() || h == nil {
		return ctx
	}
	return propagator.Extract(ctx, natsCarrier(h))
}

// ExtractHTTP returns ctx continuing the W3C traceparent of an incoming
// request, if it has a valid one.
func ExtractHTTP(ctx context.Context, h http.Header) context.Context {
	if !Enabled() {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Traceparent is the W3C traceparent of the span in ctx, or "": the form in
// which a trace context waits in Postgres (a queued call, a CRM update)
// or in a batched event's body.
func Traceparent(ctx context.Context) string {
	if !Enabled() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c[HeaderTraceparent]
}

// FromTraceparent returns ctx continuing the trace tp names ("" or
// malformed: ctx unchanged).
func FromTraceparent(ctx context.Context, tp string) context.Context {
	if tp == "" || !Enabled() {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{HeaderTraceparent: tp})
}

// Transport sends the trace context of each request's context to the peer
// (traceparent), then lets base do the rest, so the egress policy of base
// stays in force. Without a span, the request goes out untouched.
func Transport(base http.RoundTripper) http.RoundTripper {
	return propagating{base: base}
}

type propagating struct{ base http.RoundTripper }

func (p propagating) RoundTrip(req *http.Request) (*http.Response, error) {
	if !Enabled() {
		return p.base.RoundTrip(req)
	}
	c := propagation.MapCarrier{}
	propagator.Inject(req.Context(), c)
	if len(c) == 0 {
		return p.base.RoundTrip(req)
	}
	// A RoundTripper must not change the caller's request.
	req = req.Clone(req.Context())
	for k, v := range c {
		req.Header.Set(k, v)
	}
	return p.base.RoundTrip(req)
}

// CloseIdleConnections passes through to base, so http.Client's own
// CloseIdleConnections keeps working.
func (p propagating) CloseIdleConnections() {
	if c, ok := p.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
