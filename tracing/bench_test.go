package tracing_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/tracing"
)

// BenchmarkSpanOff is what every instrumented step costs while
// OTEL_EXPORTER_OTLP_ENDPOINT is unset: a span started and ended, its
// context asked for a traceparent.
func BenchmarkSpanOff(b *testing.B) {
	restore := tracing.Install(nil)
	defer restore()
	benchmarkStep(b)
}

// discard is an exporter that drops what it is given: the cost of the
// spans themselves, without a network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkSpanOn is the same step with tracing on and every span sampled.
func BenchmarkSpanOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	restore := tracing.Install(tp)
	defer restore()
	benchmarkStep(b)
}

// benchmarkStep is one instrumented step: a span started and ended, its
// context asked for a traceparent.
func benchmarkStep(b *testing.B) {
	ctx := context.Background()
	id := uuid.New()
	b.ReportAllocs()
	for b.Loop() {
		c, span := tracing.Start(ctx, "dial", trace.SpanKindClient)
		tracing.Call(span, id, id, 1)
		tracing.Outcome(span, "accepted")
		_ = tracing.Traceparent(c)
		span.End()
	}
}
