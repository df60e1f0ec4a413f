package queue

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configure the in-process NATS server.
type EmbeddedOptions struct {
	// StoreDir holds the JetStream file store.
	StoreDir string
	// Listen is host:port to accept TCP clients on; empty means no port at
	// all (the process connects in-process).
	Listen string
	// SyncInterval is the file store's fsync interval; zero fsyncs every
	// write before it is acknowledged.
	SyncInterval time.Duration
	// Token is required of every client once the server listens: whoever
	// reaches the port could otherwise read every tenant's transcripts and
	// forge events. The in-process client presents it too.
	Token string
}

// StartEmbedded starts a JetStream-enabled NATS server in this process.
func StartEmbedded(opt EmbeddedOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "callqueue-embedded",
		JetStream:  true,
		StoreDir:   filepath.Clean(opt.StoreDir),
		MaxPayload: MaxPayload,
		NoSigs:     true,
		DontListen: opt.Listen == "",
	}
	if opt.SyncInterval == 0 {
		opts.SyncAlways = true
	} else {
		opts.SyncInterval = opt.SyncInterval
	}
	if opt.Listen != "" {
		if opt.Token == "" {
			return nil, errors.New("the embedded NATS server listens on CALLQUEUE_NATS_LISTEN only with a token")
		}
		opts.Authorization = opt.Token
		host, port, err := net.SplitHostPort(opt.Listen)
		if err != nil {
			return nil, fmt.Errorf("CALLQUEUE_NATS_LISTEN: %w", err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("CALLQUEUE_NATS_LISTEN port: %w", err)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats did not become ready in 30s")
	}
	return ns, nil
}

// ConnectOptions are the client options callqueue uses everywhere:
// reconnect forever, and buffer nothing while reconnecting. A buffered
// publish would be stored on reconnect, after the webhook that made it
// answered 503 (contract §4: "503 and nothing half-done"); an ack or a
// kick that fails instead is covered by redelivery and the sweep.
func ConnectOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(true),
	}
}

// ConnectEmbedded connects to an embedded server in-process (no TCP),
// with the server's token when it has one.
func ConnectEmbedded(ns *server.Server, name, token string) (*nats.Conn, error) {
	opts := append(ConnectOptions(name), nats.InProcessServer(ns))
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	return nats.Connect("", opts...)
}
