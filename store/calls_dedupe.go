package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// expiringKey is a processed key and how long it is remembered.
type expiringKey struct {
	key     string
	expires time.Time
}

// messageKeys are the events' stream positions: a redelivered message is
// recognised and applies nothing twice.
func messageKeys(events []CallEvent) [][]expiringKey {
	keys := make([][]expiringKey, len(events))
	for i, ev := range events {
		if ev.Key != "" {
			keys[i] = []expiringKey{{ev.Key, ev.At.Add(processedKeyTTL)}}
		}
	}
	return keys
}

// naturalKeys identify a webhook's event by what it is about, not by its
// bytes: its call, attempt and event type. Identical bodies about two
// attempts are two events; the same event delivered twice is one.
//
// An event that names only our call id cannot say which attempt it is
// about: it is taken as about the current attempt, and its body key also
// counts, across attempts, for DedupeTTL. A repeated delivery of attempt
// 1's event therefore never ends attempt 2, at the price that two such
// identical bodies about consecutive attempts within DedupeTTL count once
// (diallers name the attempt's call_id, which we send them, to avoid it).
// An event that resolved to no call is keyed by its body.
func naturalKeys(events []CallEvent, ids []uuid.UUID, calls map[uuid.UUID]*lockedCall, fresh []bool) [][]expiringKey {
	keys := make([][]expiringKey, len(events))
	for i, ev := range events {
		if !fresh[i] || ev.DedupeTTL <= 0 {
			continue
		}
		body := expiringKey{ev.DedupeKey, ev.At.Add(ev.DedupeTTL)}
		c := calls[ids[i]]
		if c != nil && c.IntegrationID != ev.IntegrationID {
			c = nil // another tenant's call, locked for an event of its own: not this event's
		}
		if c == nil {
			if ev.DedupeKey != "" {
				keys[i] = []expiringKey{body}
			}
			continue
		}
		attempt := ev.Attempt
		if attempt == 0 {
			attempt = c.Attempt
			if ev.DedupeKey != "" {
				keys[i] = append(keys[i], body)
			}
		}
		keys[i] = append(keys[i], expiringKey{fmt.Sprintf("event:%s:%d:%s", c.ID, attempt, eventType(ev)), ev.At.Add(processedKeyTTL)})
	}
	return keys
}

// eventType is the dialler's name of the event (media_end and call_end
// both end a call, but are distinct events).
func eventType(ev CallEvent) string {
	if t, ok := ev.Detail["eventType"].(string); ok && t != "" {
		return t
	}
	return string(ev.Event.Kind)
}

// claimKeys records each event's keys; an event is fresh when every key
// it carries was newly recorded (an expired key is taken over) and no
// earlier event of the batch carried it.
func claimKeys(ctx context.Context, tx pgx.Tx, at time.Time, perEvent [][]expiringKey) ([]bool, error) {
	var p pipeline
	claim := claimKeysIn(&p, at, perEvent)
	if err := p.send(ctx, tx); err != nil {
		return nil, err
	}
	return claim.fresh(), nil
}

// keyClaim is claimKeys's statement queued in a pipeline: fresh answers
// once the pipeline is sent.
type keyClaim struct {
	perEvent [][]expiringKey
	taken    map[string]bool
}

// claimKeysIn queues claimKeys's statement in p (none when no event
// carries a key).
func claimKeysIn(p *pipeline, at time.Time, perEvent [][]expiringKey) *keyClaim {
	claim := &keyClaim{perEvent: perEvent, taken: map[string]bool{}}
	var keys []string
	var expiries []time.Time
	// Each key once: ON CONFLICT DO UPDATE fails the whole statement when
	// two of its rows hit the same key (two copies of one webhook in a
	// batch). Later copies are marked duplicates by fresh.
	listed := map[string]bool{}
	for _, ks := range perEvent {
		for _, k := range ks {
			if k.key != "" && !listed[k.key] {
				listed[k.key] = true
				keys = append(keys, k.key)
				expiries = append(expiries, k.expires)
			}
		}
	}
	if len(keys) == 0 {
		return claim
	}
	p.query("claim event keys", func(rows pgx.Rows) error {
		var k string
		if err := rows.Scan(&k); err != nil {
			return err
		}
		claim.taken[k] = true
		return nil
	}, `INSERT INTO processed_keys (scope, key, expires_at)
		SELECT 'event', k, e FROM unnest($1::text[], $2::timestamptz[]) AS t (k, e)
		ON CONFLICT (scope, key) DO UPDATE SET expires_at = EXCLUDED.expires_at
			WHERE processed_keys.expires_at <= $3
		RETURNING key`, keys, expiries, at)
	return claim
}

// fresh reports, for each event, whether its keys were all newly taken.
func (c *keyClaim) fresh() []bool {
	fresh := make([]bool, len(c.perEvent))
	seen := map[string]bool{}
	for i, ks := range c.perEvent {
		fresh[i] = true
		for _, k := range ks {
			if k.key == "" {
				continue
			}
			fresh[i] = fresh[i] && c.taken[k.key] && !seen[k.key]
			seen[k.key] = true
		}
	}
	return fresh
}
