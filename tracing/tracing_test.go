package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/callqueue/callqueue/tracing"
	"github.com/callqueue/callqueue/tracing/tracingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// on installs an exporting provider pointed at a receiver in the test, the
// way a deployment configures it: through OTEL_* variables.
func on(t *testing.T) *tracingtest.Receiver {
	rcv := tracingtest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	shutdown, err := tracing.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	if !tracing.Enabled() {
		t.Fatal("Setup with an endpoint left tracing off")
	}
	return rcv
}

func TestOffWithoutEndpoint(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := tracing.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if tracing.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	ctx := context.Background()
	got, span := tracing.Start(ctx, "x", trace.SpanKindInternal)
	span.End()
	if got != ctx || span.IsRecording() {
		t.Fatal("Start off must hand back the context and a no-op span")
	}
	if tp := tracing.Traceparent(got); tp != "" {
		t.Fatalf("Traceparent off = %q", tp)
	}
	h := nats.Header{}
	tracing.InjectNATS(got, h)
	if len(h) != 0 {
		t.Fatalf("InjectNATS off wrote %v", h)
	}
}

func TestDisabledByStandardVariables(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if tracing.Configured() {
		t.Fatal("OTEL_SDK_DISABLED=true must turn traces off")
	}
	t.Setenv("OTEL_SDK_DISABLED", "")
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if tracing.Configured() {
		t.Fatal("OTEL_TRACES_EXPORTER=none must turn traces off")
	}
}

func TestExportsOverOTLPHTTP(t *testing.T) {
	rcv := on(t)
	ctx, parent := tracing.Start(context.Background(), "parent", trace.SpanKindServer)
	// Across JetStream: headers written on one side, read on the other.
	h := nats.Header{}
	tracing.InjectNATS(ctx, h)
	if h.Get("traceparent") == "" {
		t.Fatalf("no traceparent in the message headers: %v", h)
	}
	_, child := tracing.Start(tracing.ExtractNATS(context.Background(), h), "child", trace.SpanKindConsumer)
	child.End()
	// Across Postgres: a traceparent stored and read back.
	_, later := tracing.Start(tracing.FromTraceparent(context.Background(), tracing.Traceparent(ctx)), "later", trace.SpanKindInternal)
	later.End()
	parent.End()
	traceID := tracing.TraceID(ctx)
	spans := rcv.WaitFor(t, 10*time.Second, "three spans", func(s []tracingtest.Span) bool { return len(s) == 3 })
	if !tracingtest.Connected(spans) || spans[0].TraceID() != traceID {
		t.Fatalf("spans not one trace %s: %s", traceID, tracingtest.Describe(spans))
	}
	for _, s := range spans {
		if s.Service != tracing.ServiceName {
			t.Fatalf("service.name = %q", s.Service)
		}
	}
}

func TestTransportSendsTraceparent(t *testing.T) {
	on(t)
	got := make(chan string, 2)
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	defer peer.Close()
	client := &http.Client{Transport: tracing.Transport(http.DefaultTransport)}
	defer client.CloseIdleConnections()

	ctx, span := tracing.Start(context.Background(), "out", trace.SpanKindClient)
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, peer.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if tp := <-got; !strings.Contains(tp, span.SpanContext().SpanID().String()) || !strings.Contains(tp, tracing.TraceID(ctx)) {
		t.Fatalf("traceparent = %q, want the client span's", tp)
	}
	if req.Header.Get("traceparent") != "" {
		t.Fatal("the caller's request was changed")
	}
	// Without a span nothing is sent.
	req, _ = http.NewRequestWithContext(context.Background(), http.MethodGet, peer.URL, nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if tp := <-got; tp != "" {
		t.Fatalf("traceparent without a span = %q", tp)
	}
}

func TestLinkReadsTraceparent(t *testing.T) {
	on(t)
	if _, ok := tracing.Link("garbage"); ok {
		t.Fatal("a malformed traceparent made a link")
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l, ok := tracing.Link(tp)
	if !ok || l.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("Link(%q) = %v %v", tp, l, ok)
	}
}
