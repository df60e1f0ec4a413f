package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/callqueue/callqueue/jsonhttp"
)

// Handler options (seed 002 IHandlerConfig, seed 000's example
// `"defaultArgs": {"retries": 3, "timeout": 5000}`): a handler's
// defaultArgs, or an invoke's args, may carry them beside the built-in's
// payload. They steer the run and are taken out before the built-in sees
// the payload, which it would otherwise refuse as unknown fields.
const (
	optionRetries = "retries"
	optionTimeout = "timeout"

	// MaxHandlerRetries bounds retries (seed 002: 0–20).
	MaxHandlerRetries = 20
	// MaxHandlerTimeout bounds timeout; it is given in milliseconds.
	MaxHandlerTimeout = 5 * time.Minute
	// invokeRetryBackoff is the first wait between runs; it doubles up to
	// maxInvokeRetryBackoff.
	invokeRetryBackoff    = 100 * time.Millisecond
	maxInvokeRetryBackoff = 2 * time.Second
)

// handlerOptions steer one invoke.
type handlerOptions struct {
	// Retries is how many times a failed run is repeated (0: run once).
	Retries int
	// Timeout bounds each run; 0 leaves it to the request.
	Timeout time.Duration
}

// takeHandlerOptions removes the options from the top level of raw (a
// JSON object, or null) into opts, and returns the rest. field is raw's
// JSON path in the request, for errors.
func takeHandlerOptions(raw json.RawMessage, field string, opts *handlerOptions) (json.RawMessage, error) {
	if isNull(raw) || !isObject(raw) {
		return raw, nil
	}
	var m map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, jsonhttp.BadRequest(field, "%s is not valid JSON", field)
	}
	if v, ok := m[optionRetries]; ok {
		n, err := boundedInt(v, 0, MaxHandlerRetries)
		if err != nil {
			return nil, jsonhttp.Invalid(field+"."+optionRetries, "retries must be a whole number from 0 to %d", MaxHandlerRetries)
		}
		opts.Retries = n
		delete(m, optionRetries)
	}
	if v, ok := m[optionTimeout]; ok {
		ms, err := boundedInt(v, 1, int(MaxHandlerTimeout/time.Millisecond))
		if err != nil {
			return nil, jsonhttp.Invalid(field+"."+optionTimeout, "timeout must be a whole number of milliseconds from 1 to %d",
				MaxHandlerTimeout/time.Millisecond)
		}
		opts.Timeout = time.Duration(ms) * time.Millisecond
		delete(m, optionTimeout)
	}
	return json.Marshal(m)
}

func boundedInt(raw json.RawMessage, lo, hi int) (int, error) {
	var n json.Number
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' {
		return 0, errors.New("not a number") // json.Number would take "3"
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	v, err := n.Int64()
	if err != nil || v < int64(lo) || v > int64(hi) {
		return 0, errors.New("out of bounds")
	}
	return int(v), nil
}

// runWithOptions runs fn, each run bounded by opts.Timeout, and repeats a
// run that failed for a reason that may pass (a 5xx: a dependency down, a
// timeout) up to opts.Retries times, with a doubling pause. A refusal
// (4xx) is final: the same input would be refused again.
func runWithOptions(ctx context.Context, opts handlerOptions, fn func(context.Context) (any, error)) (any, error) {
	backoff := invokeRetryBackoff
	for attempt := 0; ; attempt++ {
		runCtx, cancel := ctx, context.CancelFunc(func() {})
		if opts.Timeout > 0 {
			runCtx, cancel = context.WithTimeout(ctx, opts.Timeout)
		}
		out, err := fn(runCtx)
		if err != nil && runCtx.Err() != nil && ctx.Err() == nil {
			err = jsonhttp.Errorf(http.StatusGatewayTimeout, "handler_timeout", "",
				"the handler did not finish within its timeout of %d ms", opts.Timeout/time.Millisecond)
		}
		cancel()
		if err == nil || attempt >= opts.Retries || !mayPass(err) || ctx.Err() != nil {
			return out, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		backoff = min(2*backoff, maxInvokeRetryBackoff)
	}
}

// mayPass reports whether a failed run is worth repeating.
func mayPass(err error) bool {
	var je *jsonhttp.Error
	if errors.As(err, &je) {
		return je.Status >= 500
	}
	return !errors.Is(err, context.Canceled)
}
