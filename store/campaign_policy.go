package store

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// overlayCampaignPolicies gives the locked calls of campaigns their
// campaign's call handling: its overlay (retry policy, max attempts,
// calling window) decoded over the integration's.
func overlayCampaignPolicies(ctx context.Context, tx pgx.Tx, calls map[uuid.UUID]*lockedCall) error {
	var ids []uuid.UUID
	for _, c := range calls {
		if c.CampaignID != nil {
			ids = append(ids, *c.CampaignID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT id, call_handling FROM campaigns WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	byID := map[uuid.UUID]json.RawMessage{}
	for rows.Next() {
		var id uuid.UUID
		var overlay json.RawMessage
		if err := rows.Scan(&id, &overlay); err != nil {
			return err
		}
		byID[id] = overlay
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range calls {
		if c.CampaignID == nil {
			continue
		}
		if policy, err := c.policy.Overlay(byID[*c.CampaignID]); err == nil {
			c.policy = policy
		}
	}
	return nil
}
