package workers

import (
	"github.com/google/uuid"

	"github.com/callqueue/callqueue/config"
)

// closedReason says why an integration may not dial right now, or "" when
// it may: its voice settings are incomplete or its dialler breaker is open.
// Calling windows are checked per call, in the claim (a recipient's window
// is in the recipient's zone). The reasons are metric labels.
func (d *Dispatcher) closedReason(cfg config.Integration, integrationID uuid.UUID) string {
	switch {
	case !cfg.Voice.Complete():
		return "not_configured"
	case !d.dialer.Allows(integrationID):
		return "breaker_open"
	default:
		return ""
	}
}
