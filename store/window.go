package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callqueue/callqueue/config"
	"github.com/callqueue/callqueue/phone"
)

// windowOpensAt is when a call to number may be dialled at the earliest,
// from now, under calling window w: now when the window is open (or there
// is none). A "recipient" window is read in the call's own zone (tz), else
// in the zones the number implies — open in all of them at once, so nobody
// is called early or late — else in the integration's agent timezone.
// fallback names the agent timezone when a recipient window fell back to
// it (the number implies no zone, or zones whose windows never overlap):
// the call's history says so (contract §6).
func windowOpensAt(w *config.CallingWindow, number, tz, agentTZ string, now time.Time) (opens time.Time, fallback string) {
	if w == nil {
		return now, ""
	}
	if !w.ForRecipient() {
		return w.NextOpenIn(now, loadZones(w.Timezone)), ""
	}
	if zones := loadZones(tz); len(zones) > 0 {
		return w.NextOpenIn(now, zones), ""
	}
	if zones := loadZones(phone.Timezones(number)...); len(zones) > 0 {
		if at, ok := w.NextOpenInAll(now, zones); ok {
			return at, ""
		}
	}
	return w.NextOpenIn(now, loadZones(agentTZ)), agentTZ
}

// loadZones loads the named zones, leaving out unknown and empty names.
func loadZones(names ...string) []*time.Location {
	var out []*time.Location
	for _, name := range names {
		if loc, err := config.Location(name); err == nil && name != "" {
			out = append(out, loc)
		}
	}
	return out
}

// windowInputChanged recomputes, after a change of the integration's
// config key, the max attempts and retries of its unfinished calls
// (applyPolicyChange) and when each of its calls waiting for a calling
// window may be dialled: the window is in call_handling (a campaign's overlay may
// replace it) and a "recipient" window falls back to the agent's
// timezone. Calls whose window is now open go back to the ready queue.
func (s *Store) windowInputChanged(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, key string) error {
	if key != config.KeyCallHandling && key != config.KeyAgent {
		return nil
	}
	raw, err := loadConfig(ctx, tx, integrationID)
	if err != nil {
		return err
	}
	cfg := config.Decode(raw)
	if key == config.KeyCallHandling {
		if err := applyPolicyChange(ctx, tx, integrationID, nil, cfg, s.now()); err != nil {
			return err
		}
	}
	if err := releaseWindowDeferrals(ctx, tx, integrationID, nil, s.now()); err != nil {
		return err
	}
	return rescheduleWindowWaits(ctx, tx, integrationID, cfg, s.now())
}

// releaseWindowDeferrals makes due now the retries that wait only because
// their window had closed when their originate was about to go
// (ConfirmDial's deferral): the window they waited for may have changed,
// so the next claim judges them under the one in force, as it does the
// queued calls waiting for a window. Those of one campaign when campaignID
// is set, else of the whole integration.
func releaseWindowDeferrals(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, campaignID *uuid.UUID, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE calls c SET next_retry_at = $3
		WHERE c.integration_id = $1 AND ($2::uuid IS NULL OR c.campaign_id = $2)
		  AND c.status = 'retry_scheduled' AND c.next_retry_at > $3
		  AND (SELECT e.kind = 'dial_deferred' AND e.detail ? 'notBefore' FROM call_events e
		       WHERE e.call_id = c.id ORDER BY e.id DESC LIMIT 1)`, integrationID, campaignID, now)
	return err
}

// rescheduleWindowWaits sets the not_before of every call of the
// integration that waits for its calling window anew under cfg, as of now.
func rescheduleWindowWaits(ctx context.Context, tx pgx.Tx, integrationID uuid.UUID, cfg config.Integration, now time.Time) error {
	rows, err := tx.Query(ctx, `SELECT c.id, c.phone_number, COALESCE(c.timezone, ''), k.call_handling
		FROM calls c LEFT JOIN campaigns k ON k.id = c.campaign_id
		WHERE c.integration_id = $1 AND c.status = 'queued' AND c.not_before IS NOT NULL
		FOR UPDATE OF c`, integrationID)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		ids  []uuid.UUID
		at   []*time.Time
		byOv = map[string]config.CallHandling{}
	)
	for rows.Next() {
		var (
			id         uuid.UUID
			number, tz string
			overlay    json.RawMessage
		)
		if err := rows.Scan(&id, &number, &tz, &overlay); err != nil {
			return err
		}
		handling, ok := byOv[string(overlay)]
		if !ok {
			if handling, err = cfg.CallHandling.Overlay(overlay); err != nil {
				handling = cfg.CallHandling
			}
			byOv[string(overlay)] = handling
		}
		var wait *time.Time
		if opens, _ := windowOpensAt(handling.CallingWindow, number, tz, cfg.Agent.Timezone, now); opens.After(now) {
			wait = &opens
		}
		ids, at = append(ids, id), append(at, wait)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	if len(ids) == 0 {
		return nil
	}
	_, err = tx.Exec(ctx, `UPDATE calls c SET not_before = v.at FROM unnest($1::uuid[], $2::timestamptz[]) AS v (id, at)
		WHERE c.id = v.id AND c.not_before IS DISTINCT FROM v.at`, ids, at)
	return err
}
