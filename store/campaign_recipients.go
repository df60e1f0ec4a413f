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
// calls, copied in with their history rows (COPY, not a statement per
// recipient). A recipient
// already in the campaign, or named twice in the list, is a duplicate and
// skipped, so a retried upload adds nothing twice. A recipient whose calling
// window is closed is stored waiting for its opening. It returns the
// campaign's integration and how many were added.
func (s *Store) AddRecipients(ctx context.Context, owner string, campaignID uuid.UUID, recipients []Recipient, now time.Time) (uuid.UUID, int, error) {
	var integrationID uuid.UUID
	added := 0
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return uuid.Nil, 0, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
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
		dataStore := cfg.Data().Store
		known, err := knownRecipients(ctx, tx, campaignID, recipients)
		if err != nil {
			return err
		}
		callRows, history := make([][]any, 0, len(recipients)), make([][]any, 0, len(recipients))
		// Ids as arrays: pgx writes those straight into COPY's binary
		// format, where a uuid.UUID would go through its text form.
		integ, campaign := [16]byte(c.IntegrationID), [16]byte(campaignID)
		queued := json.RawMessage(`{"campaignId": "` + campaignID.String() + `"}`)
		for _, r := range recipients {
			if known[r.key()] || (r.ExternalID == "" && known["p:"+r.PhoneNumber]) {
				continue
			}
			known[r.key()], known["p:"+r.PhoneNumber] = true, true
			vars := json.RawMessage(`{}`)
			if len(r.DynamicVariables) > 0 {
				vars = r.DynamicVariables
			}
			var wait *time.Time
			if at, _ := windowOpensAt(handling.CallingWindow, r.PhoneNumber, r.Timezone, cfg.Agent.Timezone, now); at.After(now) {
				wait = &at
			}
			id := [16]byte(uuid.Must(uuid.NewV7()))
			callRows = append(callRows, []any{id, integ, campaign, r.PhoneNumber, nullable(r.RecordID),
				nullable(r.ExternalID), nullable(r.Timezone), "queued", 0, handling.MaxAttempts, now, wait, vars, now, now,
				dataStore, hash(r.PhoneNumber)})
			history = append(history, []any{id, 0, "queued", "queued", queued, now})
		}
		if len(callRows) == 0 {
			return nil
		}
		// COPY: the campaign's row lock makes this the only writer of its
		// recipients, so the duplicates were all found above (the unique
		// indexes stay the last word).
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"calls"}, []string{"id", "integration_id", "campaign_id", "phone_number",
			"record_id", "external_id", "timezone", "status", "priority", "max_attempts", "queued_at", "not_before",
			"dynamic_variables", "created_at", "updated_at", "data_store", "phone_hash"}, pgx.CopyFromRows(callRows)); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"call_events"}, []string{"call_id", "attempt", "kind", "to_status", "detail", "occurred_at"},
			pgx.CopyFromRows(history)); err != nil {
			return err
		}
		added = len(callRows)
		if c.Status == CampaignCompleted && added > 0 {
			_, err = tx.Exec(ctx, `UPDATE campaigns SET status = $2, updated_at = $3 WHERE id = $1`,
				campaignID, startStatus(c.StartAt, now), now)
		}
		return err
	})
	return integrationID, added, err
}

// knownRecipients are the keys (Recipient.key) of those of recipients the
// campaign has already: by external id, and by number ("p:" keys, which a
// recipient without an external id must not repeat).
func knownRecipients(ctx context.Context, tx pgx.Tx, campaignID uuid.UUID, recipients []Recipient) (map[string]bool, error) {
	externals, phones := make([]string, 0, len(recipients)), make([]string, 0, len(recipients))
	for _, r := range recipients {
		if r.ExternalID != "" {
			externals = append(externals, r.ExternalID)
		} else {
			phones = append(phones, r.PhoneNumber)
		}
	}
	known := make(map[string]bool, len(recipients))
	rows, err := tx.Query(ctx, `SELECT 'x:' || external_id FROM calls WHERE campaign_id = $1 AND external_id = ANY($2)
		UNION ALL SELECT 'p:' || phone_number FROM calls WHERE campaign_id = $1 AND phone_number = ANY($3)`,
		campaignID, externals, phones)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, err
		}
		known[key] = true
	}
	return known, rows.Err()
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
