package store

import (
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// campaignOverlays are the call handling overlays of the campaigns of
// calls being locked, read by a statement queued in a pipeline after the
// lock (a call's campaign never changes).
type campaignOverlays map[uuid.UUID]json.RawMessage

// campaignOverlaysIn queues the read of the overlays of the campaigns of
// the calls ids in p.
func campaignOverlaysIn(p *pipeline, ids []uuid.UUID) campaignOverlays {
	byID := campaignOverlays{}
	p.query("read campaign policies", func(rows pgx.Rows) error {
		var id uuid.UUID
		var overlay json.RawMessage
		if err := rows.Scan(&id, &overlay); err != nil {
			return err
		}
		byID[id] = overlay
		return nil
	}, `SELECT p.id, p.call_handling FROM campaigns p
		WHERE p.id IN (SELECT c.campaign_id FROM calls c WHERE c.id = ANY($1) AND c.campaign_id IS NOT NULL)`, ids)
	return byID
}

// overlay gives the locked calls of campaigns their campaign's call
// handling: its overlay (retry policy, max attempts, calling window)
// decoded over the integration's.
func (o campaignOverlays) overlay(calls map[uuid.UUID]*lockedCall) {
	for _, c := range calls {
		if c.CampaignID == nil {
			continue
		}
		if policy, err := c.policy.Overlay(o[*c.CampaignID]); err == nil {
			c.policy = policy
		}
	}
}
