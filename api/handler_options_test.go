package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/callqueue/callqueue/jsonhttp"
)

func TestTakeHandlerOptions(t *testing.T) {
	var opts handlerOptions
	rest, err := takeHandlerOptions(json.RawMessage(`{"retries": 3, "timeout": 5000, "phone_number": "+380991234567"}`), "defaultArgs", &opts)
	if err != nil || string(rest) != `{"phone_number":"+380991234567"}` || opts.Retries != 3 || opts.Timeout != 5*time.Second {
		t.Fatalf("rest %s, opts %+v, err %v", rest, opts, err)
	}
	// Nested fields of the same name belong to the payload.
	rest, err = takeHandlerOptions(json.RawMessage(`{"body": {"retries": 1}}`), "args", &opts)
	if err != nil || string(rest) != `{"body":{"retries":1}}` {
		t.Fatalf("rest %s, err %v", rest, err)
	}
	for _, raw := range []string{`{"retries": 21}`, `{"retries": "3"}`, `{"timeout": 0}`, `{"timeout": 1e9}`} {
		var je *jsonhttp.Error
		if _, err := takeHandlerOptions(json.RawMessage(raw), "args", &opts); !errors.As(err, &je) || je.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: err %v, want a 422", raw, err)
		}
	}
}

func TestRunWithOptions(t *testing.T) {
	unavailable := jsonhttp.Unavailable("queue")
	refused := jsonhttp.Invalid("phone_number", "bad")
	for _, tt := range []struct {
		name      string
		opts      handlerOptions
		failures  []error // the runs' errors, in order; then success
		wantRuns  int
		wantError int // status, 0 for success
	}{
		{"success at once", handlerOptions{Retries: 3}, nil, 1, 0},
		{"passes on the third run", handlerOptions{Retries: 3}, []error{unavailable, unavailable}, 3, 0},
		{"retries exhausted", handlerOptions{Retries: 1}, []error{unavailable, unavailable, unavailable}, 2, http.StatusServiceUnavailable},
		{"no retries", handlerOptions{}, []error{unavailable}, 1, http.StatusServiceUnavailable},
		{"a refusal is final", handlerOptions{Retries: 5}, []error{refused}, 1, http.StatusUnprocessableEntity},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			_, err := runWithOptions(context.Background(), tt.opts, func(context.Context) (any, error) {
				runs++
				if runs <= len(tt.failures) {
					return nil, tt.failures[runs-1]
				}
				return "ok", nil
			})
			if runs != tt.wantRuns {
				t.Errorf("runs %d, want %d", runs, tt.wantRuns)
			}
			var je *jsonhttp.Error
			switch {
			case tt.wantError == 0 && err != nil:
				t.Errorf("err %v, want success", err)
			case tt.wantError != 0 && (!errors.As(err, &je) || je.Status != tt.wantError):
				t.Errorf("err %v, want status %d", err, tt.wantError)
			}
		})
	}
}

// TestRunWithOptionsTimeout: a run that does not finish within the
// timeout is cut off (its context ends), repeated, and reported as 504.
func TestRunWithOptionsTimeout(t *testing.T) {
	runs := 0
	_, err := runWithOptions(context.Background(), handlerOptions{Retries: 1, Timeout: 20 * time.Millisecond},
		func(ctx context.Context) (any, error) {
			runs++
			<-ctx.Done() // a built-in that waits on a hung dependency
			return nil, jsonhttp.Unavailable("queue")
		})
	var je *jsonhttp.Error
	if runs != 2 || !errors.As(err, &je) || je.Status != http.StatusGatewayTimeout || je.Code != "handler_timeout" {
		t.Fatalf("runs %d, err %v; want 2 runs and a 504 handler_timeout", runs, err)
	}
	// The caller going away ends the runs without a repeat.
	ctx, cancel := context.WithCancel(context.Background())
	runs = 0
	_, err = runWithOptions(ctx, handlerOptions{Retries: 5}, func(context.Context) (any, error) {
		runs++
		cancel()
		return nil, context.Canceled
	})
	if runs != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("runs %d, err %v after the caller left", runs, err)
	}
}
