package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/callstate"
	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/egress"
	"github.com/callqueue/callqueue/hmacsig"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
)

// PredialSecretKey signs pre-dial requests like CRM updates.
const PredialSecretKey = "PREDIAL_SECRET"

// PredialRetryAfter is how long a call waits when the pre-dial check did
// not answer: it fails closed, and the attempt is not spent.
const PredialRetryAfter = 60 * time.Second

// predialAnswerLimit bounds the answer read from a pre-dial endpoint.
const predialAnswerLimit = 1 << 20

// newPredialHTTPClient is the client of pre-dial checks when none is given:
// it refuses every redirect. The service gives one under the egress policy.
func newPredialHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// predialRequest is what the pre-dial endpoint is sent (contract §7).
type predialRequest struct {
	CallID           uuid.UUID       `json:"callId"`
	Attempt          int             `json:"attempt"`
	PhoneNumber      string          `json:"phoneNumber"`
	RecordID         *string         `json:"recordId"`
	CampaignID       *uuid.UUID      `json:"campaignId"`
	DynamicVariables json.RawMessage `json:"dynamicVariables"`
}

// predialAnswer is the endpoint's verdict.
type predialAnswer struct {
	Eligible         *bool          `json:"eligible"`
	Reason           string         `json:"reason"`
	DynamicVariables map[string]any `json:"dynamicVariables"`
}

// askPredial asks the integration's pre-dial endpoint about a claimed
// call. An error means no usable answer (timeout, non-2xx, malformed).
func askPredial(ctx context.Context, client *http.Client, p config.Predial, secret string, c store.Call) (predialAnswer, error) {
	vars := c.DynamicVariables
	if len(vars) == 0 {
		vars = json.RawMessage(`{}`)
	}
	body, err := json.Marshal(predialRequest{CallID: c.ID, Attempt: c.Attempt, PhoneNumber: c.PhoneNumber, RecordID: c.RecordID,
		CampaignID: c.CampaignID, DynamicVariables: vars})
	if err != nil {
		return predialAnswer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return predialAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("X-Callqueue-Signature", hmacsig.Header(secret, "v1", strconv.FormatInt(time.Now().Unix(), 10), body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return predialAnswer{}, egress.Fail("pre-dial check", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, predialAnswerLimit))
	if err != nil {
		return predialAnswer{}, egress.Fail("pre-dial check", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return predialAnswer{}, &egress.StatusError{Op: "pre-dial check", Status: resp.StatusCode}
	}
	var a predialAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return a, fmt.Errorf("pre-dial answer is not JSON (%w): %w", err, egress.ErrMalformed)
	}
	if a.Eligible == nil {
		return a, fmt.Errorf("pre-dial answer lacks a boolean eligible: %w", egress.ErrMalformed)
	}
	return a, nil
}

// mergeVariables is vars with extra laid over it.
func mergeVariables(vars json.RawMessage, extra map[string]any) json.RawMessage {
	if len(extra) == 0 {
		return vars
	}
	merged := map[string]any{}
	_ = json.Unmarshal(vars, &merged) // absent or not an object: the extra ones alone
	maps.Copy(merged, extra)
	raw, err := json.Marshal(merged)
	if err != nil {
		return vars
	}
	return raw
}

// predial runs the pre-dial check of a claimed call, if its integration has
// one. It returns the variables to dial with, or held when the call is not
// to be dialled: ineligible (cancelled) or no usable answer (back to
// retry_scheduled after PredialRetryAfter, its attempt not spent). Either
// way the call's slot is given back by the recorded event.
func (d *Dispatcher) predial(ctx context.Context, c store.Claimed) (vars json.RawMessage, held bool) {
	call := c.Call
	p, ok := c.Config.Predial()
	if !ok {
		return call.DynamicVariables, false
	}
	ev := store.CallEvent{IntegrationID: call.IntegrationID, CallID: call.ID, Attempt: call.Attempt, Claim: c.Claim,
		TraceID: deref(call.TraceID), Traceparent: tracing.Traceparent(ctx)}
	// Without PREDIAL_SECRET the request goes unsigned; a database that
	// cannot say whether there is one fails the check closed.
	secret, err := d.w.store.SecretValue(d.dialCtx, call.IntegrationID, PredialSecretKey)
	if errors.Is(err, store.ErrNotFound) {
		secret, err = "", nil
	}
	var answer predialAnswer
	if err == nil {
		pctx, span := tracing.Start(ctx, "pre-dial check", trace.SpanKindClient)
		tracing.Call(span, call.IntegrationID, call.ID, call.Attempt)
		answer, err = askPredial(pctx, d.w.predialClient, p, secret, call)
		switch {
		case err != nil:
			tracing.Fail(span, egress.Describe(err))
		case *answer.Eligible:
			tracing.Outcome(span, "eligible")
		default:
			tracing.Outcome(span, callstate.OutcomeIneligible)
		}
		span.End()
	}
	if d.dialCtx.Err() != nil {
		return nil, true // stopping: the watchdog releases the call
	}
	log := d.w.log.With().Str("trace_id", ev.TraceID).Str("call_id", call.ID.String()).Int("attempt", call.Attempt).Logger()
	switch {
	case err != nil:
		d.w.metrics.Dialled(metricsCall(call), "predial_failed")
		log.Warn().Err(err).Msg("pre-dial check failed; the call waits and is not dialled")
		ev.Event = callstate.Event{Kind: callstate.DialDeferred, RetryAfter: PredialRetryAfter}
		ev.Detail = map[string]any{"predial": "failed", "error": egress.Describe(err)}
	case !*answer.Eligible:
		d.w.metrics.Dialled(metricsCall(call), "ineligible")
		log.Info().Str("reason", answer.Reason).Msg("pre-dial check: not eligible")
		ev.Event = callstate.Event{Kind: callstate.Cancel, Reason: callstate.OutcomeIneligible}
		ev.Detail = map[string]any{"predial": "ineligible", "reason": answer.Reason}
	default:
		return mergeVariables(call.DynamicVariables, answer.DynamicVariables), false
	}
	ev.At = d.w.clock.Now()
	var applied []store.Applied
	err = retryStore(d.dialCtx, func() (err error) {
		applied, err = d.w.store.ApplyEvents(d.dialCtx, []store.CallEvent{ev})
		return err
	})
	if err != nil {
		log.Error().Err(err).Msg("could not record the pre-dial outcome; the watchdog will release the call")
		return nil, true
	}
	d.w.applied(applied)
	return nil, true
}
