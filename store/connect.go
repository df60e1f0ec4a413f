package store

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Bounds keep a silent database from hanging the process. A primary
// black-holed by a failover (packets dropped, no RST) otherwise holds a
// query for the kernel's ~15 minutes of retransmissions, and with it the
// messages its worker holds.
type Bounds struct {
	// ConnectTimeout bounds opening a connection (TCP, TLS and startup).
	ConnectTimeout time.Duration
	// StatementTimeout is the server's statement_timeout. The client gives
	// up on any query a little after it (queryDeadline), whatever the
	// server does.
	StatementTimeout time.Duration
	// TCPUserTimeout is how long sent data (keepalive probes included) may
	// go unacknowledged before the kernel drops the connection
	// (TCP_USER_TIMEOUT, Linux only).
	TCPUserTimeout time.Duration
}

// Defaults for Bounds.
const (
	ConnectTimeoutDefault   = 5 * time.Second
	StatementTimeoutDefault = 30 * time.Second
	TCPUserTimeoutDefault   = 15 * time.Second
)

func (b Bounds) withDefaults() Bounds {
	b.ConnectTimeout = cmp.Or(b.ConnectTimeout, ConnectTimeoutDefault)
	b.StatementTimeout = cmp.Or(b.StatementTimeout, StatementTimeoutDefault)
	b.TCPUserTimeout = cmp.Or(b.TCPUserTimeout, TCPUserTimeoutDefault)
	return b
}

// queryDeadline is when the client stops waiting for a statement: past the
// server's statement_timeout, so that a server that answers always
// answers first, with its own error.
func (b Bounds) queryDeadline() time.Duration {
	return b.StatementTimeout + min(b.StatementTimeout/2, 5*time.Second)
}

// Connect opens a pool within bounds and checks it answers.
func Connect(ctx context.Context, url string, maxConns int32, bounds Bounds) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.MaxConnIdleTime = time.Minute
	b := bounds.withDefaults()
	cfg.ConnConfig.ConnectTimeout = b.ConnectTimeout
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(b.StatementTimeout.Milliseconds())
	// A session idle in its transaction for longer than the client would
	// wait for a statement has lost its client (a black hole, a process
	// frozen): the server ends it, and the row locks it holds go with it,
	// instead of stopping every other replica that needs those rows until
	// the server's keepalive notices, hours later.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(b.queryDeadline().Milliseconds())
	// Probes every third of the user timeout keep an idle connection's
	// silence from going unnoticed longer than it.
	probe := max(b.TCPUserTimeout/3, time.Second)
	dialer := &net.Dialer{Timeout: b.ConnectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: probe, Interval: probe, Count: 3},
		Control:         tcpUserTimeout(b.TCPUserTimeout)}
	cfg.ConnConfig.DialFunc = dialer.DialContext
	cfg.ConnConfig.Tracer = queryDeadline{after: b.queryDeadline()}
	cfg.AfterConnect = RegisterTypes
	// The ping that checks an idle connection as it is taken from the pool
	// is no statement the tracer sees: it gets the same deadline, or a
	// silent connection hangs its caller for as long as the silence lasts.
	cfg.PingTimeout = b.queryDeadline()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return pool, nil
}

// Unbounded marks ctx's statements as allowed to outlast the client's
// query deadline (migrations, which also lift statement_timeout).
func Unbounded(ctx context.Context) context.Context {
	return context.WithValue(ctx, unboundedKey{}, true)
}

type (
	unboundedKey      struct{}
	deadlineCancelKey struct{}
)

// queryDeadline gives every statement, batch and copy a deadline of its
// own, so a connection that stops answering fails the statement instead
// of hanging it; pgx then closes the connection.
type queryDeadline struct{ after time.Duration }

func (d queryDeadline) start(ctx context.Context) context.Context {
	if ctx.Value(unboundedKey{}) != nil {
		return ctx
	}
	ctx, cancel := context.WithTimeout(ctx, d.after)
	return context.WithValue(ctx, deadlineCancelKey{}, cancel)
}

func (queryDeadline) end(ctx context.Context) {
	if cancel, ok := ctx.Value(deadlineCancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (d queryDeadline) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return d.start(ctx)
}

func (d queryDeadline) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	d.end(ctx)
}

func (d queryDeadline) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return d.start(ctx)
}

func (queryDeadline) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (d queryDeadline) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	d.end(ctx)
}

func (d queryDeadline) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return d.start(ctx)
}

func (d queryDeadline) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	d.end(ctx)
}
