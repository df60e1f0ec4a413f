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
	// derivedPhoneKey is the key of phone numbers' hashes derived from the
	// secret key (never the encryption key itself); the database keeps the
	// one in use, sealed (see phoneHasher).
	derivedPhoneKey []byte
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
	return &Sealer{aead: aead, derivedPhoneKey: derive.Sum(nil)}, nil
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

// previewMinLength is the shortest value a preview shows any of: four
// characters of a shorter one would be a real head start on guessing it.
const previewMinLength = 16

// Preview shows enough of a secret to recognise it: "sk…89", four
// characters at most, and none of a value shorter than previewMinLength
// ("…": set, but nothing shown).
func Preview(value string) string {
	r := []rune(value)
	switch {
	case len(r) == 0:
		return ""
	case len(r) < previewMinLength:
		return "…"
	}
	return string(r[:2]) + "…" + string(r[len(r)-2:])
}
