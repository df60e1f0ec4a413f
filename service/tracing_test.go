package service_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/service/servicetest"
	"github.com/callqueue/callqueue/tracing"
	"github.com/callqueue/callqueue/tracing/tracingtest"
)

// TestTraces follows a call through an OTLP/HTTP receiver, the way a
// collector sees it (contract §10): originate → intake → claim → dial is
// one trace, started by the webhook; call_end → apply → CRM update is
// another, continuing the dialler's traceparent; each outbound request
// sends its span's traceparent; the history's traceId is the trace's id;
// and no exported span carries a phone number, token or body.
//
// Not parallel: the tracer provider belongs to the process.
func TestTraces(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	shutdown, err := tracing.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })

	p := setupPeers(t, servicetest.Options{}, map[string]any{"max_attempts": 1})
	const phone = "+380671234567"
	const marker = "body-marker-8c1f"
	var accepted struct {
		CallID uuid.UUID `json:"callId"`
	}
	code, hdr, raw := servicetest.Send(t, http.DefaultClient, "POST", p.in.URL+"/"+p.integ.Slug+"/webhook/call-originate",
		map[string]string{"X-Webhook-Token": p.integ.WebhookToken},
		map[string]any{"phone_number": phone, "dynamic_variables": map[string]any{"note": marker}})
	if code != http.StatusAccepted {
		t.Fatalf("call-originate: %d %s", code, raw)
	}
	if err := json.Unmarshal(raw, &accepted); err != nil {
		t.Fatal(err)
	}
	originateTrace := hdr.Get("X-Trace-Id")
	if len(originateTrace) != 32 {
		t.Fatalf("X-Trace-Id = %q, want a 32-hex OTel trace id", originateTrace)
	}
	call := awaitDialled(t, p.admin, accepted.CallID)

	// originate → intake → claim → dial, one tree under the webhook's span.
	want := []string{"webhook call-originate", "intake call", "claim slot", "dial", "originate"}
	rcv.WaitFor(t, 20*time.Second, "the originate trace", func([]tracingtest.Span) bool {
		return hasAll(rcv.Trace(originateTrace), want)
	})
	trace := rcv.Trace(originateTrace)
	if !tracingtest.Connected(trace) {
		t.Fatalf("originate trace not one tree: %s", tracingtest.Describe(trace))
	}
	chain(t, trace, want)
	dial, _ := tracingtest.Named(trace, "originate")
	if dial.Attr("callqueue.call_id") != accepted.CallID.String() || dial.Attr("callqueue.integration_id") != p.integ.ID.String() ||
		dial.Attr("callqueue.attempt") == "" {
		t.Fatalf("originate span attributes: %v", dial.GetAttributes())
	}
	if tp := p.va.Requests()[0].Traceparent; !strings.Contains(tp, originateTrace+"-"+dial.SpanID()) {
		t.Fatalf("the VA got traceparent %q, want the originate span's (%s)", tp, dial.SpanID())
	}
	for _, ev := range call.Events {
		if ev.TraceID == nil || *ev.TraceID != originateTrace {
			t.Fatalf("history %s has traceId %v, want %s", ev.Kind, ev.TraceID, originateTrace)
		}
	}

	// call_end → apply → CRM update, continuing the dialler's traceparent.
	const dialler = "4bf92f3577b34da6a3ce929d0e0e4736"
	const diallerSpan = "00f067aa0ba902b7"
	code, hdr, raw = servicetest.Send(t, http.DefaultClient, "POST", p.in.URL+"/"+p.integ.Slug+"/webhook/call-events",
		map[string]string{"X-Webhook-Token": p.integ.WebhookToken, "traceparent": "00-" + dialler + "-" + diallerSpan + "-01"},
		map[string]any{"eventType": "call_end", "callId": accepted.CallID, "duration": 2})
	if code != http.StatusAccepted {
		t.Fatalf("call-events: %d %s", code, raw)
	}
	if got := hdr.Get("X-Trace-Id"); got != dialler {
		t.Fatalf("X-Trace-Id = %q, want the caller's trace %s", got, dialler)
	}
	servicetest.Eventually(t, 20*time.Second, "the CRM update", func() bool {
		p.in.Workers.Outbox.Kick()
		return len(p.crm.Updates()) == 1
	})
	want = []string{"webhook call-events", "apply call_end", "crm update"}
	rcv.WaitFor(t, 20*time.Second, "the call_end trace", func([]tracingtest.Span) bool {
		return hasAll(rcv.Trace(dialler), want)
	})
	trace = rcv.Trace(dialler)
	root, ok := tracingtest.Root(trace)
	if !ok || root.GetName() != "webhook call-events" || root.ParentID() != diallerSpan {
		t.Fatalf("call_end trace does not hang under the dialler's span %s: %s", diallerSpan, tracingtest.Describe(trace))
	}
	chain(t, trace, want)
	update, _ := tracingtest.Named(trace, "crm update")
	if got := p.crm.Updates()[0].Header.Get("traceparent"); !strings.Contains(got, dialler+"-"+update.SpanID()) {
		t.Fatalf("the CRM got traceparent %q, want the crm update span's (%s)", got, update.SpanID())
	}
	if update.Attr("callqueue.outcome") != "delivered" {
		t.Fatalf("crm update outcome = %q", update.Attr("callqueue.outcome"))
	}
	ended := getCall(t, p.admin, accepted.CallID)
	if last := ended.Events[len(ended.Events)-1]; last.TraceID == nil || *last.TraceID != dialler {
		t.Fatalf("call_end's history entry has traceId %v, want %s", last.TraceID, dialler)
	}

	// Nothing a span carries names the person, a credential or a body.
	secrets := []string{phone, strings.TrimPrefix(phone, "+"), "671234567", marker, p.integ.WebhookToken,
		servicetest.FakeVAToken, servicetest.FakeCRMSecret}
	for _, s := range rcv.Spans() {
		for _, text := range spanTexts(s) {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("span %q carries %q: %s", s.GetName(), secret, text)
				}
			}
		}
	}
}

// hasAll reports whether spans include one of each name.
func hasAll(spans []tracingtest.Span, names []string) bool {
	for _, n := range names {
		if _, ok := tracingtest.Named(spans, n); !ok {
			return false
		}
	}
	return true
}

// chain checks that each named span descends from the one before it.
func chain(t *testing.T, spans []tracingtest.Span, names []string) {
	t.Helper()
	byID := map[string]tracingtest.Span{}
	for _, s := range spans {
		byID[s.SpanID()] = s
	}
	for i := 1; i < len(names); i++ {
		ancestor, _ := tracingtest.Named(spans, names[i-1])
		s, _ := tracingtest.Named(spans, names[i])
		for s.ParentID() != ancestor.SpanID() {
			parent, ok := byID[s.ParentID()]
			if !ok {
				t.Fatalf("%q does not descend from %q: %s", names[i], names[i-1], tracingtest.Describe(spans))
			}
			s = parent
		}
	}
}

// spanTexts is every text an exported span carries: its name, status,
// attributes and events with theirs.
func spanTexts(s tracingtest.Span) []string {
	texts := []string{s.GetName(), s.GetStatus().GetMessage()}
	for _, kv := range s.GetAttributes() {
		texts = append(texts, kv.GetKey()+"="+tracingtest.Value(kv.GetValue()))
	}
	for _, ev := range s.GetEvents() {
		texts = append(texts, ev.GetName())
		for _, kv := range ev.GetAttributes() {
			texts = append(texts, kv.GetKey()+"="+tracingtest.Value(kv.GetValue()))
		}
	}
	for _, l := range s.GetLinks() {
		for _, kv := range l.GetAttributes() {
			texts = append(texts, kv.GetKey()+"="+tracingtest.Value(kv.GetValue()))
		}
	}
	return slices.DeleteFunc(texts, func(s string) bool { return s == "" })
}
