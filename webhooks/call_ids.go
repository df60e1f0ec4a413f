package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"

	"github.com/google/uuid"
)

// A retried call-originate with the same Idempotency-Key is answered with
// the same call id, so the id is derived from the integration and the key.
// The derivation is keyed by the server's secret: integration ids are no
// secret (they label /metrics) and keys are often guessable (an order
// number), and whoever can compute another tenant's call id can name that
// call in webhooks. The same secret gives the same ids after a restart.

// CallIDKey derives the key of call ids from the server's secret key
// (CALLQUEUE_SECRET_KEY), so that the secret itself signs nothing else.
func CallIDKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("callqueue call ids v1"))
	return m.Sum(nil)
}

// keyedCallID is the call id of an integration's Idempotency-Key: an
// RFC 9562 version 8 UUID made of the HMAC of both.
func keyedCallID(key []byte, integrationID uuid.UUID, idemKey string) uuid.UUID {
	m := hmac.New(sha256.New, key)
	m.Write(integrationID[:])
	m.Write([]byte(idemKey))
	var id uuid.UUID
	copy(id[:], m.Sum(nil))
	id[6] = id[6]&0x0f | 0x80 // version 8
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}

// randomCallIDKey is the key of a Handler given none: ids stay stable
// within the process only.
func randomCallIDKey() []byte {
	key := make([]byte, sha256.Size)
	_, _ = rand.Read(key)
	return key
}
