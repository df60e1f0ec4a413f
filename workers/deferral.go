package workers

import (
	"time"

	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
)

// closedReason says why an integration may not dial right now, or "" when
// it may: its voice settings are incomplete, its calling window is closed,
// or its dialler breaker is open. The reasons are metric labels.
func (d *Dispatcher) closedReason(cfg config.Integration, integrationID uuid.UUID, now time.Time) string {
	switch {
	case !cfg.Voice.Complete():
		return "not_configured"
	case !cfg.CallHandling.CallingWindow.Open(now):
		return "calling_window"
	case !d.dialer.Allows(integrationID):
		return "breaker_open"
	default:
		return ""
	}
}
