package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer encrypts values at rest with AES-256-GCM. Each value is bound to
// its context (what it is and whose) as additional data, so a ciphertext
// copied to another row does not decrypt.
type Sealer struct {
	aead cipher.AEAD
	// phoneKey keys the hashes of phone numbers (PhoneHash), derived from
	// the secret key so that it is never the encryption key itself.
	phoneKey []byte
}

// NewSealer takes a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	derive := hmac.New(sha256.New, key)
	derive.Write([]byte("callqueue phone hash v1"))
	return &Sealer{aead: aead, phoneKey: derive.Sum(nil)}, nil
}

// PhoneHash is the keyed hash (HMAC-SHA256) of an E.164 number: what an
// erased person's suppression keeps. Without the secret key, nobody can
// test guesses against it (a plain hash of a phone number is reversed by
// trying every number).
func (s *Sealer) PhoneHash(e164 string) []byte {
	m := hmac.New(sha256.New, s.phoneKey)
	m.Write([]byte(e164))
	return m.Sum(nil)
}

// Seal encrypts plaintext; the result is nonce || ciphertext.
func (s *Sealer) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return s.aead.Seal(nonce, nonce, plaintext, []byte(context))
}

// ErrDecrypt means a value did not decrypt under this key and context.
var ErrDecrypt = errors.New("value does not decrypt with the configured secret key")

// Open decrypts a value sealed with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrDecrypt
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// Preview shows enough of a secret to recognise it: "sk-…89". A short
// value shows only its last two characters (a third of a 6-character PIN
// would be a real head start); a very short one shows nothing.
func Preview(value string) string {
	r := []rune(value)
	switch {
	case len(r) == 0:
		return ""
	case len(r) <= 4:
		return "…"
	case len(r) < 12:
		return "…" + string(r[len(r)-2:])
	}
	return string(r[:3]) + "…" + string(r[len(r)-2:])
}

// phoneHash is the keyed hash of an E.164 number (Sealer.PhoneHash); nil
// for a store opened without a key (commands that never see a number).
func (s *Store) phoneHash(e164 string) []byte {
	if s.sealer == nil {
		return nil
	}
	return s.sealer.PhoneHash(e164)
}
