// Package tracingtest is an OTLP/HTTP trace receiver for tests: what a
// collector would receive from callqueue, decoded from the wire protobuf.
package tracingtest

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with its service's name.
type Span struct {
	Service string
	*tracepb.Span
}

// TraceID is the span's trace id in hex.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// SpanID is the span's id in hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.GetSpanId()) }

// ParentID is the parent span's id in hex ("" for a root).
func (s Span) ParentID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Attr is the string form of the span's attribute key ("" when absent).
func (s Span) Attr(key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			return Value(kv.GetValue())
		}
	}
	return ""
}

// Value is an attribute value as text.
func Value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue, *commonpb.AnyValue_BoolValue, *commonpb.AnyValue_DoubleValue:
		return v.String()
	}
	return v.String()
}

// Receiver is an OTLP/HTTP endpoint on 127.0.0.1.
type Receiver struct {
	URL string

	mu    sync.Mutex
	spans []Span
}

// NewReceiver starts a receiver, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.GetResourceSpans() {
		var service string
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Service: service, Span: s})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans is every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Trace is the spans received so far of one trace.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID() == traceID {
			out = append(out, s)
		}
	}
	return out
}

// WaitFor polls until cond holds of the spans received, failing the test
// after timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := r.Spans()
		if cond(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; received %d spans: %s", what, len(spans), Describe(spans))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Describe lists spans as name(trace/span<-parent) for failure messages.
func Describe(spans []Span) string {
	var b []byte
	for _, s := range spans {
		b = append(b, s.GetName()...)
		b = append(b, '(')
		b = append(b, s.TraceID()[:8]...)
		b = append(b, '/')
		b = append(b, s.SpanID()[:8]...)
		if p := s.ParentID(); p != "" {
			b = append(b, "<-"...)
			b = append(b, p[:8]...)
		}
		b = append(b, ") "...)
	}
	return string(b)
}

// Root is the one span of spans whose parent is not among them, when
// spans form one tree of one trace; ok is false otherwise. A trace that
// continues a caller's traceparent has a root whose parent is the caller's.
func Root(spans []Span) (root Span, ok bool) {
	ids := map[string]bool{}
	for _, s := range spans {
		if s.TraceID() != spans[0].TraceID() {
			return Span{}, false
		}
		ids[s.SpanID()] = true
	}
	roots := 0
	for _, s := range spans {
		if p := s.ParentID(); p == "" || !ids[p] {
			root = s
			roots++
		}
	}
	return root, roots == 1
}

// Connected reports whether spans form one tree of one trace that started
// here (its root has no parent).
func Connected(spans []Span) bool {
	if len(spans) == 0 {
		return false
	}
	root, ok := Root(spans)
	return ok && root.ParentID() == ""
}

// Named is the first span called name, or false.
func Named(spans []Span, name string) (Span, bool) {
	for _, s := range spans {
		if s.GetName() == name {
			return s, true
		}
	}
	return Span{}, false
}
