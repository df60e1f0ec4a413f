package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/tracing"
)

// SubmitCallEvent takes a call-events body for an integration through the
// same validation and publishing as POST /{slug}/webhook/call-events, for
// a dialler that runs inside this process (the simulator): only the HTTP
// transport and its authentication are skipped. A refused body returns
// the *jsonhttp.Error the endpoint would have answered with.
func (h *Handler) SubmitCallEvent(ctx context.Context, integrationID uuid.UUID, body []byte) error {
	return h.submit(ctx, "call-events", MaxBody, integrationID, body, h.callEvents)
}

// SubmitPostcall is SubmitCallEvent for agent-postcall bodies (ElevenLabs'
// post-call webhooks).
func (h *Handler) SubmitPostcall(ctx context.Context, integrationID uuid.UUID, body []byte) error {
	return h.submit(ctx, "agent-postcall", MaxPostcallBody, integrationID, body, h.agentPostcall)
}

func (h *Handler) submit(ctx context.Context, name string, limit int, integrationID uuid.UUID, body []byte, fn handlerFunc) error {
	start := time.Now()
	code := http.StatusOK
	defer func() {
		h.metrics.WebhookRequests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		h.metrics.WebhookDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}()
	if len(body) > limit {
		code = http.StatusRequestEntityTooLarge
		return jsonhttp.Errorf(code, "body_too_large", "", "body exceeds %d bytes", limit)
	}
	ctx, span := tracing.Start(ctx, "webhook "+name, trace.SpanKindServer)
	defer span.End()
	tracing.Call(span, integrationID, uuid.Nil, 0)
	traceID := tracing.TraceID(ctx)
	if traceID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		traceID = hex.EncodeToString(b)
	}
	status, _, err := fn(ctx, request{in: Integration{ID: integrationID}, body: body, header: http.Header{},
		query: func(string) string { return "" }, traceID: traceID, logger: h.log})
	if err != nil {
		code = http.StatusInternalServerError
		var e *jsonhttp.Error
		if errors.As(err, &e) {
			code = e.Status
		}
		return err
	}
	code = status
	return nil
}
