package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Quotas on what one tenant can make the service hold (contract §3: a
// count beyond its quota is a 422 quota_exceeded). Each is checked in the
// change's transaction, under the integration's row lock, so concurrent
// requests cannot overshoot it.
const (
	// MaxSecretsPerIntegration counts secrets and credentials together.
	MaxSecretsPerIntegration = 100
	// MaxHandlersPerIntegration bounds handlers, sync-handlers included.
	MaxHandlersPerIntegration = 200
	// MaxParkedPerIntegration bounds events waiting for a dialler id that
	// is not known yet; beyond it the integration's oldest are dropped
	// (see park).
	MaxParkedPerIntegration = 1000
)

// QuotaError is a change that would take an integration beyond a quota.
type QuotaError struct{ Field, Message string }

func (e *QuotaError) Error() string { return e.Message }

// checkQuota refuses adding n rows of table to integrationID when that
// would exceed limit. what names them in the message.
func checkQuota(ctx context.Context, tx pgx.Tx, table string, integrationID uuid.UUID, n, limit int, field, what string) error {
	var count int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE integration_id = $1`, integrationID).Scan(&count); err != nil {
		return err
	}
	if count+n > limit {
		return &QuotaError{Field: field, Message: fmt.Sprintf("an integration has at most %d %s", limit, what)}
	}
	return nil
}
