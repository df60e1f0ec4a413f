package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// KeyRotationError reports the values that did not decrypt with the old
// key during RotateKey; nothing was changed.
type KeyRotationError struct {
	Failed, Total int
	// AlreadyNew counts the failed values that decrypt with the new key:
	// a rotation that already ran, or values written under the new key.
	AlreadyNew int
	// Values names the first few failed values, never their contents.
	Values []string
}

// keyRotationNamed bounds how many failed values the error names.
const keyRotationNamed = 5

func (e *KeyRotationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d encrypted values do not decrypt with the old key", e.Failed, e.Total)
	if e.AlreadyNew > 0 {
		fmt.Fprintf(&b, " (%d of them decrypt with the new key already)", e.AlreadyNew)
	}
	if len(e.Values) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Values, ", "))
		if e.Failed > len(e.Values) {
			fmt.Fprintf(&b, " and %d more", e.Failed-len(e.Values))
		}
	}
	b.WriteString("; nothing was changed")
	return b.String()
}

// Unwrap makes a KeyRotationError match ErrDecrypt.
func (e *KeyRotationError) Unwrap() error { return ErrDecrypt }

// sealedValue is one value RotateKey re-encrypts.
type sealedValue struct {
	id      uuid.UUID
	context string
	name    string // for errors: what it is, never what it holds
	sealed  []byte
}

// RotateKey re-encrypts every secret and credential value and every
// integration's webhook token from oldKey to newKey, in one transaction:
// when any value does not decrypt with oldKey nothing changes and the error
// is a *KeyRotationError. It returns how many values it re-encrypted.
//
// Writes to integrations and secrets wait until it commits (reads do not),
// so no value can be written under the old key behind its back. A service
// still running with the old key would go on writing under it afterwards:
// stop the service, rotate, start it with the new key.
func (s *Store) RotateKey(ctx context.Context, oldKey, newKey *Sealer) (int, error) {
	if oldKey == nil || newKey == nil {
		return 0, fmt.Errorf("rotate key: both keys are required")
	}
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '30s'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE integrations, secrets IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock integrations and secrets: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT id, webhook_token_enc FROM integrations ORDER BY id`)
		if err != nil {
			return fmt.Errorf("read webhook tokens: %w", err)
		}
		tokens, err := pgx.CollectRows(rows,
			func(row pgx.CollectableRow) (sealedValue, error) {
				var v sealedValue
				err := row.Scan(&v.id, &v.sealed)
				v.context = webhookTokenContext(v.id)
				v.name = "webhook token of integration " + v.id.String()
				return v, err
			})
		if err != nil {
			return fmt.Errorf("read webhook tokens: %w", err)
		}
		rows, err = tx.Query(ctx, `SELECT id, integration_id, kind, key, value_enc FROM secrets ORDER BY integration_id, kind, key`)
		if err != nil {
			return fmt.Errorf("read secrets: %w", err)
		}
		secrets, err := pgx.CollectRows(rows,
			func(row pgx.CollectableRow) (sealedValue, error) {
				var v sealedValue
				var integrationID uuid.UUID
				var kind, key string
				err := row.Scan(&v.id, &integrationID, &kind, &key, &v.sealed)
				v.context = secretContext(integrationID, kind, key)
				v.name = fmt.Sprintf("%s %s of integration %s", kind, key, integrationID)
				return v, err
			})
		if err != nil {
			return fmt.Errorf("read secrets: %w", err)
		}

		failed := &KeyRotationError{Total: len(tokens) + len(secrets)}
		reseal := func(values []sealedValue) (ids []uuid.UUID, sealed [][]byte) {
			for _, v := range values {
				plain, err := oldKey.Open(v.sealed, v.context)
				if err != nil {
					failed.Failed++
					if _, err := newKey.Open(v.sealed, v.context); err == nil {
						failed.AlreadyNew++
					}
					if len(failed.Values) < keyRotationNamed {
						failed.Values = append(failed.Values, v.name)
					}
					continue
				}
				ids = append(ids, v.id)
				sealed = append(sealed, newKey.Seal(plain, v.context))
			}
			return ids, sealed
		}
		if err := resealPhoneKey(ctx, tx, oldKey, newKey); err != nil {
			return err
		}
		tokenIDs, tokenEnc := reseal(tokens)
		secretIDs, secretEnc := reseal(secrets)
		if failed.Failed > 0 {
			return failed
		}
		// updated_at stays: the values are the same, only their sealing is new.
		if _, err := tx.Exec(ctx, `UPDATE integrations i SET webhook_token_enc = u.enc
			FROM unnest($1::uuid[], $2::bytea[]) AS u (id, enc) WHERE i.id = u.id`, tokenIDs, tokenEnc); err != nil {
			return fmt.Errorf("write webhook tokens: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE secrets s SET value_enc = u.enc
			FROM unnest($1::uuid[], $2::bytea[]) AS u (id, enc) WHERE s.id = u.id`, secretIDs, secretEnc); err != nil {
			return fmt.Errorf("write secrets: %w", err)
		}
		n = len(tokenIDs) + len(secretIDs)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rotate key: %w", err)
	}
	return n, nil
}
