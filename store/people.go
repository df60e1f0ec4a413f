package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ResourcePerson is the audit log's name for a person's erasure.
const ResourcePerson = "person"

// MaxPersonCalls bounds the calls one access document holds; a document
// that has more says so (Truncated), and the rest are read by erasing in
// turn or through the calls list.
const MaxPersonCalls = 1000

// PersonCall is one call in a person's access document: the call as
// stored with its history and its CRM updates.
type PersonCall struct {
	Call
	Events     []CallEventRow `json:"events"`
	CRMUpdates []PersonUpdate `json:"crmUpdates"`
}

// PersonUpdate is a CRM update of a person's call, with what it sends.
type PersonUpdate struct {
	Delivery
	Payload json.RawMessage `json:"payload"`
}

// Person is everything stored about one phone number in an owner's
// integrations (contract §11, right of access).
type Person struct {
	PhoneNumber  string        `json:"phoneNumber"`
	Calls        []PersonCall  `json:"calls"`
	Suppressions []Suppression `json:"suppressions"`
	Truncated    bool          `json:"truncated"`
}

// ErrPersonBusy means one of the person's calls holds a concurrency slot
// (a conversation under way): it is erased once it has ended.
var ErrPersonBusy = errors.New("a call to this number is in progress")

// PersonData gathers what is stored about phone (E.164) in owner's
// integrations, or in one of them (integrationID not uuid.Nil).
func (s *Store) PersonData(ctx context.Context, owner string, integrationID uuid.UUID, phone string) (Person, error) {
	p := Person{PhoneNumber: phone, Calls: []PersonCall{}}
	hash, err := s.phoneHasher(ctx)
	if err != nil {
		return p, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if integrationID != uuid.Nil {
			if err := ownIntegration(ctx, tx, owner, integrationID); err != nil {
				return err
			}
		}
		rows, err := tx.Query(ctx, `SELECT `+prefixed("c.", callColumns)+` FROM calls c JOIN integrations i ON i.id = c.integration_id
			WHERE i.owner_id = $1 AND ($2::uuid IS NULL OR c.integration_id = $2) AND c.phone_number = $3
			ORDER BY c.created_at, c.id LIMIT $4`, owner, nilIfZero(integrationID), phone, MaxPersonCalls+1)
		if err != nil {
			return err
		}
		calls, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Call, error) { return scanCall(row) })
		if err != nil {
			return err
		}
		if len(calls) > MaxPersonCalls {
			calls, p.Truncated = calls[:MaxPersonCalls], true
		}
		byID := map[uuid.UUID]*PersonCall{}
		ids := make([]uuid.UUID, len(calls))
		for i, c := range calls {
			p.Calls = append(p.Calls, PersonCall{Call: c, Events: []CallEventRow{}, CRMUpdates: []PersonUpdate{}})
			ids[i] = c.ID
		}
		for i := range p.Calls {
			byID[p.Calls[i].ID] = &p.Calls[i]
		}
		rows, err = tx.Query(ctx, `SELECT call_id, id, attempt, kind, from_status, to_status, detail, trace_id, occurred_at
			FROM call_events WHERE call_id = ANY($1) ORDER BY call_id, id`, ids)
		if err != nil {
			return err
		}
		var callID uuid.UUID
		var e CallEventRow
		if _, err := pgx.ForEachRow(rows, []any{&callID, &e.ID, &e.Attempt, &e.Kind, &e.FromStatus, &e.ToStatus, &e.Detail,
			&e.TraceID, &e.OccurredAt}, func() error {
			byID[callID].Events = append(byID[callID].Events, e)
			return nil
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT call_id, event, status, attempts, last_error,
				CASE WHEN status = 'pending' THEN next_attempt_at END, delivered_at, payload
			FROM crm_outbox WHERE call_id = ANY($1) ORDER BY call_id, created_at`, ids)
		if err != nil {
			return err
		}
		var u PersonUpdate
		if _, err := pgx.ForEachRow(rows, []any{&callID, &u.Event, &u.Status, &u.Attempts, &u.LastError, &u.NextAttempt,
			&u.DeliveredAt, &u.Payload}, func() error {
			byID[callID].CRMUpdates = append(byID[callID].CRMUpdates, u)
			return nil
		}); err != nil {
			return err
		}
		p.Suppressions, err = personSuppressions(ctx, tx, owner, integrationID, phone, hash(phone))
		return err
	})
	return p, err
}

// personSuppressions are owner's suppressions of phone in scope (one
// integration's own and the owner-wide ones, or all), erased ones included.
func personSuppressions(ctx context.Context, tx pgx.Tx, owner string, integrationID uuid.UUID, phone string, hash []byte) ([]Suppression, error) {
	rows, err := tx.Query(ctx, `SELECT `+suppressionColumns+` FROM suppressions
		WHERE owner_id = $1 AND ($2::uuid IS NULL OR integration_id IS NULL OR integration_id = $2)
			AND (phone_number = $3 OR (phone_number IS NULL AND phone_hash = $4))
		ORDER BY created_at, id`, owner, nilIfZero(integrationID), phone, hash)
	return collectSuppressions(rows, err)
}

// Erased is what an erasure removed, and how many suppressions now keep
// only the number's hash.
type Erased struct {
	Removed
	Suppressions int `json:"suppressions"`
}

// ErasePerson erases phone (E.164) from owner's integrations, or from one
// of them: its calls with everything linked to them (removeCalls), and its
// suppressions' numbers, which keep only their keyed hash so the number is
// still never dialled (owner-wide suppressions only when every integration
// is erased). The audit entry names no number. ErrPersonBusy while one of
// the calls holds a slot: nothing is erased then.
func (s *Store) ErasePerson(ctx context.Context, owner string, integrationID uuid.UUID, phone string, now time.Time) (Erased, error) {
	var out Erased
	hasher, err := s.phoneHasher(ctx)
	if err != nil {
		return out, err
	}
	hash := hasher(phone)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out = Erased{}
		if integrationID != uuid.Nil {
			if err := ownIntegration(ctx, tx, owner, integrationID); err != nil {
				return err
			}
		}
		// Locking the calls first orders this against a claim: a call
		// claimed meanwhile is seen holding its slot.
		rows, err := tx.Query(ctx, `SELECT c.id, c.slot_taken_at IS NOT NULL FROM calls c JOIN integrations i ON i.id = c.integration_id
			WHERE i.owner_id = $1 AND ($2::uuid IS NULL OR c.integration_id = $2) AND c.phone_number = $3
			ORDER BY c.id FOR UPDATE OF c`, owner, nilIfZero(integrationID), phone)
		if err != nil {
			return err
		}
		var ids []uuid.UUID
		var id uuid.UUID
		var live, busy bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &live}, func() error {
			ids, busy = append(ids, id), busy || live
			return nil
		}); err != nil {
			return err
		}
		if busy {
			return ErrPersonBusy
		}
		if out.Removed, err = removeCalls(ctx, tx, ids); err != nil {
			return err
		}
		// An entry already kept as this hash in the same scope absorbs the
		// number's own one (erased before, suppressed again since).
		if _, err := tx.Exec(ctx, `DELETE FROM suppressions s WHERE s.owner_id = $1 AND s.phone_number = $3
			AND (CASE WHEN $2::uuid IS NULL THEN true ELSE s.integration_id = $2 END)
			AND EXISTS (SELECT 1 FROM suppressions e WHERE e.owner_id = s.owner_id
				AND e.integration_id IS NOT DISTINCT FROM s.integration_id AND e.phone_number IS NULL AND e.phone_hash = $4)`,
			owner, nilIfZero(integrationID), phone, hash); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE suppressions s SET phone_number = NULL, phone_hash = $4
			WHERE s.owner_id = $1 AND s.phone_number = $3 AND (CASE WHEN $2::uuid IS NULL THEN true ELSE s.integration_id = $2 END)`,
			owner, nilIfZero(integrationID), phone, hash)
		if err != nil {
			return err
		}
		out.Suppressions = int(tag.RowsAffected())
		return recordAudit(ctx, tx, Audit{IntegrationID: integrationID, Owner: owner, Actor: owner, Action: AuditDelete,
			Resource: ResourcePerson, After: map[string]any{"erased": out}})
	})
	return out, err
}
