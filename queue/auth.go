package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Auth is how callqueue proves itself to NATS. A user and password go in
// NATS_URL (nats://user:pass@host:4222) and need nothing here.
type Auth struct {
	// Creds is a credentials file (a user JWT and its nkey seed) for a
	// server in operator/JWT mode.
	Creds string
	// NkeySeed is a file holding an nkey user's seed.
	NkeySeed string
	// Token is a server's authorization token (the embedded listener's).
	Token string
	// TLSCA verifies the server's certificate; TLSCert and TLSKey are the
	// client certificate for servers that require one.
	TLSCA, TLSCert, TLSKey string
}

// Validate checks that the settings fit together (files are read later).
func (a Auth) Validate() error {
	if a.Creds != "" && a.NkeySeed != "" {
		return errors.New("CALLQUEUE_NATS_CREDS and CALLQUEUE_NATS_NKEY are two ways to sign in: give one")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return errors.New("CALLQUEUE_NATS_TLS_CERT and CALLQUEUE_NATS_TLS_KEY go together")
	}
	return nil
}

// Options turns a into client options. The credentials file and TLS files
// are read when connecting, so a missing one fails the connection.
func (a Auth) Options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	if a.Creds != "" {
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	if a.NkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(a.NkeySeed)
		if err != nil {
			return nil, fmt.Errorf("CALLQUEUE_NATS_NKEY: %w", err)
		}
		opts = append(opts, opt)
	}
	if a.Token != "" {
		opts = append(opts, nats.Token(a.Token))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// NewToken makes an authorization token for the embedded listener.
func NewToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
