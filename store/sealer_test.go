package store_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/callqueue/callqueue/store"
)

func newSealer(t *testing.T, key string) *store.Sealer {
	t.Helper()
	s, err := store.NewSealer([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	keyA = "0123456789abcdef0123456789abcdef"
	keyB = "fedcba9876543210fedcba9876543210"
)

func TestSealerRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSealer(t, keyA)
	for _, plain := range []string{"", "x", "sk-live-0123456789", strings.Repeat("довгий секрет ", 500)} {
		sealed := s.Seal([]byte(plain), "secret:ctx")
		got, err := s.Open(sealed, "secret:ctx")
		if err != nil {
			t.Fatalf("Open(Seal(%.20q)): %v", plain, err)
		}
		if string(got) != plain {
			t.Fatalf("Open(Seal(%.20q)) = %.20q", plain, got)
		}
	}
}

func TestSealerRejects(t *testing.T) {
	t.Parallel()
	a, b := newSealer(t, keyA), newSealer(t, keyB)
	sealed := a.Seal([]byte("sk-live-0123456789"), "secret:integration-1:secret:KEY")
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name    string
		sealer  *store.Sealer
		sealed  []byte
		context string
	}{
		{"wrong context", a, sealed, "secret:integration-2:secret:KEY"},
		{"empty context", a, sealed, ""},
		{"wrong key", b, sealed, "secret:integration-1:secret:KEY"},
		{"tampered", a, tampered, "secret:integration-1:secret:KEY"},
		{"truncated", a, sealed[:20], "secret:integration-1:secret:KEY"},
		{"empty", a, nil, "secret:integration-1:secret:KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.sealer.Open(tt.sealed, tt.context)
			if !errors.Is(err, store.ErrDecrypt) {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
		})
	}
}

func TestSealerCiphertext(t *testing.T) {
	t.Parallel()
	s := newSealer(t, keyA)
	plain := []byte("sk-live-0123456789abcdef")
	seen := map[string]bool{}
	for range 50 {
		sealed := s.Seal(plain, "ctx")
		if seen[string(sealed)] {
			t.Fatal("the same plaintext sealed twice to the same ciphertext: nonces repeat")
		}
		seen[string(sealed)] = true
		if bytes.Contains(sealed, plain) || bytes.Contains(sealed, plain[:8]) {
			t.Fatalf("ciphertext %x contains the plaintext", sealed)
		}
		if len(sealed) <= len(plain) {
			t.Fatalf("ciphertext of %d bytes for %d bytes of plaintext: no nonce or tag", len(sealed), len(plain))
		}
	}
}

func TestNewSealerKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := store.NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a %d-byte key", n)
		}
	}
}

func TestPreview(t *testing.T) {
	t.Parallel()
	tests := []struct{ value, want string }{
		{"", ""},
		{"a", "…"},
		{"pin4", "…"},                  // 4 characters: too short to show any of it
		{"secret", "…"},                // 6
		{"0123456789ab", "…"},          // 12: five shown would be 40 % of it
		{"sk-0123456789ab", "…"},       // 15: still under 16
		{"sk-0123456789abcd", "sk…cd"}, // 17: four characters, a quarter at most
		{"0123456789abcdef", "01…ef"},  // 16: the shortest that shows any
		{"sk-live-abcdefghij89", "sk…89"},
		{"пароль-секрет-89", "па…89"}, // runes, not bytes
		{"ключ", "…"},
		{"ключик", "…"},
	}
	for _, tt := range tests {
		if got := store.Preview(tt.value); got != tt.want {
			t.Errorf("Preview(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
	// However long the value, a preview shows four of its characters.
	long := strings.Repeat("s3cr3t", 200)
	if got := store.Preview(long); got != "s3…3t" {
		t.Errorf("Preview of a long value = %q, want %q", got, "s3…3t")
	}
}
