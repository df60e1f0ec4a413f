package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// phoneHashKeyContext binds the sealed phone-hash key to its use.
const phoneHashKeyContext = "phone-hash-key"

// phoneHasher returns the keyed hash (HMAC-SHA256) of E.164 numbers: what
// an erased person's suppression keeps, and what a call's number is
// compared with. Without the key nobody can test guesses against a hash (a
// plain hash of a phone number is reversed by trying every number). The
// key was derived from CALLQUEUE_SECRET_KEY when first needed and is kept
// sealed in the database, so a key rotation (which re-seals it) does not
// change the hashes.
func (s *Store) phoneHasher(ctx context.Context) (func(e164 string) []byte, error) {
	key := s.phoneKey.Load()
	if key == nil {
		if s.sealer == nil {
			return nil, errors.New("phone numbers' hashes need the secret key")
		}
		loaded, err := s.loadPhoneKey(ctx)
		if err != nil {
			return nil, fmt.Errorf("phone hash key: %w", err)
		}
		s.phoneKey.Store(&loaded)
		key = &loaded
	}
	return func(e164 string) []byte {
		m := hmac.New(sha256.New, *key)
		m.Write([]byte(e164))
		return m.Sum(nil)
	}, nil
}

// loadPhoneKey reads the sealed key, storing the derived one first when
// there is none yet (the first replica to need it wins).
func (s *Store) loadPhoneKey(ctx context.Context) ([]byte, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO phone_hash_key (key_enc) VALUES ($1) ON CONFLICT DO NOTHING`,
		s.sealer.Seal(s.sealer.derivedPhoneKey, phoneHashKeyContext)); err != nil {
		return nil, err
	}
	var sealed []byte
	if err := s.pool.QueryRow(ctx, `SELECT key_enc FROM phone_hash_key`).Scan(&sealed); err != nil {
		return nil, err
	}
	return s.sealer.Open(sealed, phoneHashKeyContext)
}

// resealPhoneKey re-seals the phone-hash key from oldKey to newKey within a
// key rotation; there is nothing to do before the key was first used.
func resealPhoneKey(ctx context.Context, tx pgx.Tx, oldKey, newKey *Sealer) error {
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT key_enc FROM phone_hash_key FOR UPDATE`).Scan(&sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	plain, err := oldKey.Open(sealed, phoneHashKeyContext)
	if err != nil {
		return &KeyRotationError{Failed: 1, Total: 1, Values: []string{"phone hash key"}}
	}
	_, err = tx.Exec(ctx, `UPDATE phone_hash_key SET key_enc = $1`, newKey.Seal(plain, phoneHashKeyContext))
	return err
}
