package service

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
)

// postcallCheck warns (without making the integration unhealthy: calls
// are still dialled) when ElevenLabs has opened a conversation that should
// long have ended and no post-call has come since: its webhook is disabled
// or pointed elsewhere, or post-calls answered 503 were not retried.
func (s *Service) postcallCheck(ctx context.Context, id uuid.UUID, cfg config.Integration) map[string]any {
	settle := time.Duration(cfg.CallHandling.MaxCallDurationSecs+cfg.Voice.RingTimeout())*time.Second + PostcallGraceDefault
	lag, err := s.Store.PostcallLagOf(ctx, id, s.opt.Clock.Now(), settle)
	switch {
	case err != nil:
		return map[string]any{"ok": false, "state": "unknown"}
	case lag.Stale():
		return map[string]any{"ok": false, "state": "stale", "warning": true}
	}
	return map[string]any{"ok": true, "state": "ok"}
}

// PostcallGraceDefault is how long after a call's longest possible end its
// post-call may still be on its way.
const PostcallGraceDefault = 10 * time.Minute
