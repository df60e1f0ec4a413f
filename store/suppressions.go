package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Suppression is a number that must not be dialled: for one integration,
// or (IntegrationID nil) for every integration of its owner.
type Suppression struct {
	ID            uuid.UUID  `json:"id"`
	IntegrationID *uuid.UUID `json:"integrationId"`
	PhoneNumber   string     `json:"phoneNumber"`
	Reason        string     `json:"reason"`
	ExpiresAt     *time.Time `json:"expiresAt"`
	CreatedAt     time.Time  `json:"createdAt"`
	// Erased: the person was erased and the entry keeps only the keyed
	// hash of the number, which still stops every call to it; PhoneNumber
	// is empty (null in JSON).
	Erased bool `json:"erased"`
}

// MarshalJSON shows an erased entry's number as null.
func (e Suppression) MarshalJSON() ([]byte, error) {
	type plain Suppression
	out := struct {
		plain
		PhoneNumber *string `json:"phoneNumber"`
	}{plain: plain(e)}
	if !e.Erased {
		out.PhoneNumber = &e.PhoneNumber
	}
	return json.Marshal(out)
}

// maskedPhone is how the audit log names a number: enough to tell entries
// apart, not enough to call anyone, since an append-only log cannot forget
// an erased person's number.
func maskedPhone(e164 string) string {
	if len(e164) < 8 {
		return "…"
	}
	return e164[:3] + "…" + e164[len(e164)-2:]
}

// Suppression reasons the service itself gives.
const (
	// ResourceSuppression is the audit log's name for suppression changes.
	ResourceSuppression = "suppression"

	SuppressionReasonManual    = "manual"
	SuppressionReasonRequested = "requested_in_call"
)

// AddSuppressions suppresses numbers (E.164) for an integration, or for
// every integration of owner when integrationID is uuid.Nil, in one
// statement. A number suppressed already takes the new reason and expiry.
// It returns how many entries were written.
func (s *Store) AddSuppressions(ctx context.Context, owner string, integrationID uuid.UUID, entries []Suppression, now time.Time) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return 0, err
	}
	n := len(entries)
	ids, phones, reasons := make([]uuid.UUID, n), make([]string, n), make([]string, n)
	hashes, expires, masked := make([][]byte, n), make([]*time.Time, n), make([]string, 0, min(n, 100))
	for i, e := range entries {
		ids[i], phones[i], reasons[i], expires[i] = uuid.Must(uuid.NewV7()), e.PhoneNumber, e.Reason, e.ExpiresAt
		hashes[i] = hash(e.PhoneNumber)
		if reasons[i] == "" {
			reasons[i] = SuppressionReasonManual
		}
		if len(masked) < cap(masked) {
			masked = append(masked, maskedPhone(e.PhoneNumber))
		}
	}
	var integration *uuid.UUID
	if integrationID != uuid.Nil {
		integration = &integrationID
	}
	written := 0
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if integrationID != uuid.Nil {
			if err := ownIntegration(ctx, tx, owner, integrationID); err != nil {
				return err
			}
		}
		// A number whose person was erased is suppressed already, under its
		// hash: that entry takes the new reason and expiry, and the number
		// is not written down again.
		tag, err := tx.Exec(ctx, `UPDATE suppressions s SET reason = v.reason, expires_at = v.expires, created_at = $5
			FROM (SELECT DISTINCT ON (hash) hash, reason, expires
				FROM unnest($1::bytea[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS v (hash, reason, expires, n)
				ORDER BY hash, n DESC) v
			WHERE s.owner_id = $4 AND s.integration_id IS NOT DISTINCT FROM $6::uuid AND s.phone_number IS NULL
				AND s.phone_hash = v.hash`, hashes, reasons, expires, owner, now, integration)
		if err != nil {
			return err
		}
		written = int(tag.RowsAffected())
		// DISTINCT ON: a list naming one number twice keeps its last entry
		// (ON CONFLICT cannot touch one row twice in a statement).
		tag, err = tx.Exec(ctx, `INSERT INTO suppressions (id, owner_id, integration_id, phone_number, phone_hash, reason, expires_at, created_at)
		SELECT DISTINCT ON (phone) id, $5, $6::uuid, phone, hash, reason, expires, $7
		FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $8::bytea[]) WITH ORDINALITY AS v (id, phone, reason, expires, hash, n)
		WHERE NOT EXISTS (SELECT 1 FROM suppressions e WHERE e.owner_id = $5 AND e.integration_id IS NOT DISTINCT FROM $6::uuid
			AND e.phone_number IS NULL AND e.phone_hash = v.hash)
		ORDER BY phone, n DESC
		ON CONFLICT (owner_id, integration_id, phone_number) WHERE phone_number IS NOT NULL
			DO UPDATE SET reason = EXCLUDED.reason, expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at,
				phone_hash = EXCLUDED.phone_hash`,
			ids, phones, reasons, expires, owner, integration, now, hashes)
		if err != nil {
			return err
		}
		written += int(tag.RowsAffected())
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: owner, Action: AuditCreate,
			Resource: ResourceSuppression, After: map[string]any{"count": written, "phoneNumbers": masked}})
	})
	return written, err
}

// ListSuppressions lists owner's suppressions of one integration (its own
// entries and the owner-wide ones), or with uuid.Nil the owner-wide ones,
// newest first, expired ones included.
func (s *Store) ListSuppressions(ctx context.Context, owner string, integrationID uuid.UUID, limit, offset int) ([]Suppression, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+suppressionColumns+` FROM suppressions
		WHERE owner_id = $1 AND (integration_id IS NULL OR integration_id = $2)
		ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`, owner, integrationID, limit, offset)
	return collectSuppressions(rows, err)
}

// suppressionColumns are read by collectSuppressions: an erased entry has
// no number.
const suppressionColumns = `id, integration_id, COALESCE(phone_number, ''), phone_number IS NULL, reason, expires_at, created_at`

func collectSuppressions(rows pgx.Rows, err error) ([]Suppression, error) {
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Suppression, error) {
		var e Suppression
		err := row.Scan(&e.ID, &e.IntegrationID, &e.PhoneNumber, &e.Erased, &e.Reason, &e.ExpiresAt, &e.CreatedAt)
		return e, err
	})
	if out == nil {
		out = []Suppression{}
	}
	return out, err
}

// DeleteSuppression lifts the suppression of phone for the integration
// (uuid.Nil: the owner-wide one), an erased person's included (found by
// the number's hash); ErrNotFound when there is none.
func (s *Store) DeleteSuppression(ctx context.Context, owner string, integrationID uuid.UUID, phone string) error {
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM suppressions WHERE owner_id = $1
			AND (phone_number = $3 OR (phone_number IS NULL AND phone_hash = $4))
			AND integration_id IS NOT DISTINCT FROM $2::uuid`, owner, nilIfZero(integrationID), phone, hash(phone))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: owner, Action: AuditDelete,
			Resource: ResourceSuppression, Before: map[string]string{"phoneNumber": maskedPhone(phone)}})
	})
}

func nilIfZero(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// requestsDoNotCall reports whether a finished call's analysis says the
// person asked not to be called again (do_not_call among the fields
// ElevenLabs' data collection or the LLM extracted).
func requestsDoNotCall(analysis json.RawMessage) bool {
	var a struct {
		Extracted map[string]any `json:"extracted"`
	}
	if json.Unmarshal(analysis, &a) != nil {
		return false
	}
	switch v := a.Extracted["do_not_call"].(type) {
	case bool:
		return v
	case string:
		return v == "true" || v == "yes"
	}
	return false
}

// suppressRequested suppresses, for their integrations, the numbers of the
// calls whose analysis asked for it (reason requested_in_call).
func suppressRequested(ctx context.Context, tx pgx.Tx, callIDs []uuid.UUID, at time.Time) error {
	if len(callIDs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO suppressions (id, owner_id, integration_id, phone_number, phone_hash, reason, created_at)
		SELECT DISTINCT ON (i.id, c.phone_number) gen_random_uuid(), i.owner_id, i.id, c.phone_number, c.phone_hash, $2, $3
		FROM calls c JOIN integrations i ON i.id = c.integration_id
		WHERE c.id = ANY($1) AND c.phone_number ~ '^\+[0-9]{2,15}$'
			-- an erased person's entry stays a hash: the number is not written back
			AND NOT EXISTS (SELECT 1 FROM suppressions e WHERE e.owner_id = i.owner_id AND e.integration_id = i.id
				AND e.phone_number IS NULL AND e.phone_hash = c.phone_hash)
		ON CONFLICT (owner_id, integration_id, phone_number) WHERE phone_number IS NOT NULL DO NOTHING`,
		callIDs, SuppressionReasonRequested, at)
	return err
}
