package webhooks

import (
	"bytes"
	"context"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/store"
)

// setup is POST /{slug}/setup (seed 002 built-in): it stores the default of
// every known config key not yet set, creates the placeholder secrets the
// integration lacks — empty, so they are listed for the owner to fill in
// but do not count as configured — and refreshes the status. Running it
// again creates nothing.
func (h *Handler) setup(ctx context.Context, r request) (int, any, error) {
	if body := bytes.TrimSpace(r.body); len(body) > 0 {
		// Nothing is read from the body, but it must be a JSON object if given.
		var ignored map[string]any
		if err := jsonhttp.DecodeLenient(body, &ignored); err != nil {
			return 0, nil, err
		}
	}
	answer, err := h.runSetup(ctx, r, "webhook")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, answer, nil
}

// SetupAnswer is setup's answer.
type SetupAnswer struct {
	Success bool     `json:"success"`
	Created []string `json:"created"`
	Status  string   `json:"status"`
}

func (h *Handler) runSetup(ctx context.Context, r request, actor string) (SetupAnswer, error) {
	res, err := h.store.SetupIntegration(ctx, actor, r.in.ID)
	if err != nil {
		r.log(zerolog.ErrorLevel).Err(err).Msg("setup failed")
		if store.IsTransient(err) {
			return SetupAnswer{}, jsonhttp.Unavailable("database")
		}
		return SetupAnswer{}, err
	}
	// The status (and with it dialling) may have changed.
	h.dir.Forget(r.in.Slug)
	if h.kicker != nil {
		h.kicker.Kick(r.in.ID)
	}
	if len(res.Created) > 0 {
		r.log(zerolog.InfoLevel).Strs("created", res.Created).Str("status", res.Status).Msg("integration set up")
	}
	return SetupAnswer{Success: true, Created: res.Created, Status: res.Status}, nil
}
