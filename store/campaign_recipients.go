package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
)

// Recipient is one person a campaign is to call. PhoneNumber is in E.164.
type Recipient struct {
	PhoneNumber      string
	RecordID         string
	ExternalID       string
	Timezone         string
	DynamicVariables json.RawMessage
}

// key is what makes two recipients of a campaign the same person: the
// external id, else the number.
func (r Recipient) key() string {
	if r.ExternalID != "" {
		return "x:" + r.ExternalID
	}
	return "p:" + r.PhoneNumber
}

// AddRecipients adds recipients to one of owner's campaigns as queued
// calls, in one set-based statement with their history rows. A recipient
// already in the campaign, or named twice in the list, is a duplicate and
// skipped, so a retried upload adds nothing twice. A recipient whose calling
// window is closed is stored waiting for its opening. It returns the
// campaign's integration and how many were added.
func (s *Store) AddRecipients(ctx context.Context, owner string, campaignID uuid.UUID, recipients []Recipient, now time.Time) (uuid.UUID, int, error) {
	var integrationID uuid.UUID
	added := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The campaign's row lock orders concurrent uploads to it.
		c, err := lockCampaign(ctx, tx, owner, campaignID)
		if err != nil {
			return err
		}
		if c.Status == CampaignCancelled {
			return ErrCampaignClosed
		}
		integrationID = c.IntegrationID
		raw, err := loadConfig(ctx, tx, c.IntegrationID)
		if err != nil {
			return err
		}
		cfg := config.Decode(raw)
		handling, err := cfg.CallHandling.Overlay(c.spec().Overlay())
		if err != nil {
			return err
		}
		n := len(recipients)
		var (
			ids                             = make([]uuid.UUID, 0, n)
			phones, records, externals, tzs = make([]string, 0, n), make([]*string, 0, n), make([]*string, 0, n), make([]*string, 0, n)
			vars                            = make([]string, 0, n)
			notBefore                       = make([]*time.Time, 0, n)
			seen                            = make(map[string]bool, n)
		)
		for _, r := range recipients {
			if seen[r.key()] {
				continue
			}
			seen[r.key()] = true
			ids = append(ids, uuid.Must(uuid.NewV7()))
			phones, records, externals, tzs = append(phones, r.PhoneNumber), append(records, nullable(r.RecordID)),
				append(externals, nullable(r.ExternalID)), append(tzs, nullable(r.Timezone))
			v := "{}"
			if len(r.DynamicVariables) > 0 {
				v = string(r.DynamicVariables)
			}
			vars = append(vars, v)
			var wait *time.Time
			if at := windowOpensAt(handling.CallingWindow, r.PhoneNumber, r.Timezone, cfg.Agent.Timezone, now); at.After(now) {
				wait = &at
			}
			notBefore = append(notBefore, wait)
		}
		err = tx.QueryRow(ctx, `WITH v AS (
				SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
					WITH ORDINALITY AS v (id, phone, record_id, external_id, timezone, vars, not_before, n)),
			added AS (
				INSERT INTO calls (id, integration_id, campaign_id, phone_number, record_id, external_id, timezone, status,
					priority, max_attempts, queued_at, not_before, dynamic_variables, created_at, updated_at)
				SELECT v.id, $1, $2, v.phone, v.record_id, v.external_id, v.timezone, 'queued', 0, $10, $11, v.not_before,
					v.vars::jsonb, $11, $11
				FROM v
				WHERE v.external_id IS NOT NULL OR NOT EXISTS (SELECT 1 FROM calls k
					WHERE k.integration_id = $1 AND k.phone_number = v.phone AND k.campaign_id = $2)
				ORDER BY v.n
				ON CONFLICT DO NOTHING
				RETURNING id),
			history AS (
				INSERT INTO call_events (call_id, attempt, kind, to_status, detail, occurred_at)
				SELECT id, 0, 'queued', 'queued', jsonb_build_object('campaignId', $2::uuid), $11 FROM added)
			SELECT count(*) FROM added`,
			c.IntegrationID, campaignID, ids, phones, records, externals, tzs, vars, notBefore, handling.MaxAttempts, now).Scan(&added)
		if err != nil {
			return err
		}
		if c.Status == CampaignCompleted && added > 0 {
			_, err = tx.Exec(ctx, `UPDATE campaigns SET status = $2, updated_at = $3 WHERE id = $1`,
				campaignID, startStatus(c.StartAt, now), now)
		}
		return err
	})
	return integrationID, added, err
}

// CampaignCalls streams a campaign's calls, in the order they were added,
// to fn, without transcripts and analysis; ErrNotFound when owner has no
// such campaign.
func (s *Store) CampaignCalls(ctx context.Context, owner string, campaignID uuid.UUID, fn func(Call) error) error {
	if _, err := s.GetCampaign(ctx, owner, campaignID); err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+callListColumns+` FROM calls WHERE campaign_id = $1 ORDER BY created_at, id`, campaignID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return rows.Err()
}
