// Package queue is callqueue's durable intake on NATS JetStream. Webhooks
// publish events (call-originate, call-events, agent-postcall) under subjects
// that carry the kind and the integration; workers consume them through
// durable pull consumers with explicit acks, bounded redelivery with backoff,
// and a dead-letter stream for messages that cannot be processed.
//
// By default the NATS server runs embedded in the process with a file store
// under the data directory; NATS_URL points callqueue at an external cluster.
package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callqueue/callqueue/tracing"
)

// Kind is a class of message, with its own stream and consumer.
type Kind string

// Message kinds.
const (
	KindOriginate Kind = "originate"
	KindEvents    Kind = "events"
	KindPostcall  Kind = "postcall"
)

// Headers callqueue sets on messages.
const (
	HeaderTraceID = "Callqueue-Trace-Id"
	HeaderCallID  = "Callqueue-Call-Id"
	// HeaderReason and HeaderOrigin describe a dead letter.
	HeaderReason        = "Callqueue-Dead-Reason"
	HeaderOriginSubject = "Callqueue-Origin-Subject"
	HeaderOriginSeq     = "Callqueue-Origin-Seq"
	HeaderOriginStream  = "Callqueue-Origin-Stream"
	// HeaderOriginMsgID keeps the original's Nats-Msg-Id (a dead letter
	// cannot carry Nats-* headers).
	HeaderOriginMsgID = "Callqueue-Origin-Msg-Id"
	// HeaderOriginKey is the identity a message is processed under
	// (Delivery.Key): a replayed dead letter keeps its original's, so work
	// done under it is recognised and not done twice.
	HeaderOriginKey = "Callqueue-Origin-Key"
)

// Names of streams and subjects.
const (
	subjectPrefix = "callqueue"
	dlqStream     = "CALLQUEUE_DLQ"
	kickSubject   = subjectPrefix + ".kick."
)

// Subject is where messages of kind for one integration are published.
func Subject(kind Kind, integrationID uuid.UUID) string {
	return subjectPrefix + "." + string(kind) + "." + integrationID.String()
}

// Stream is the name of the stream that holds messages of kind.
func (k Kind) Stream() string { return specs[k].Stream }

// IntegrationFromSubject extracts the integration id from a subject.
func IntegrationFromSubject(subject string) (uuid.UUID, error) {
	i := strings.LastIndexByte(subject, '.')
	return uuid.Parse(subject[i+1:])
}

// streamSpec describes one kind's stream and consumer.
type streamSpec struct {
	Stream string
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped.
	Duplicates time.Duration
	MaxAge     time.Duration
	MaxMsgSize int32
}

var specs = map[Kind]streamSpec{
	// Originate keys stay deduplicated for a day: the contract's window for
	// record_id + phone_number.
	KindOriginate: {Stream: "CALLQUEUE_ORIGINATE", Duplicates: 24 * time.Hour, MaxAge: 7 * 24 * time.Hour, MaxMsgSize: 1 << 20},
	KindEvents:    {Stream: "CALLQUEUE_EVENTS", Duplicates: 2 * time.Minute, MaxAge: 3 * 24 * time.Hour, MaxMsgSize: 1 << 20},
	// Post-call transcripts can be large; the server's max_payload is raised
	// to match for the embedded server.
	KindPostcall: {Stream: "CALLQUEUE_POSTCALL", Duplicates: 24 * time.Hour, MaxAge: 7 * 24 * time.Hour, MaxMsgSize: MaxPayload},
}

// MaxPayload is the largest message callqueue publishes.
const MaxPayload = 8 << 20

// Kinds lists the consumed kinds.
var Kinds = []Kind{KindOriginate, KindEvents, KindPostcall}

// Queue is a connection to JetStream with callqueue's streams.
type Queue struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	replicas int
	maxBytes int64
}

// Options configure a Queue.
type Options struct {
	// Replicas for each stream (external clusters).
	Replicas int
	// Name shown by the server for this connection.
	Name string
	// MaxBytes bounds each stream's bytes (StreamMaxBytesDefault when
	// zero): what a flood of webhooks can make the server store. Beyond it
	// the oldest messages go, which under a limits policy are those
	// processed long ago; the age limits bound them in time as well.
	MaxBytes int64
}

// StreamMaxBytesDefault is each stream's byte budget when Options has none.
const StreamMaxBytesDefault = 1 << 30

// New wraps an open connection and creates or updates the streams.
func New(ctx context.Context, nc *nats.Conn, opt Options) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	q := &Queue{nc: nc, js: js, replicas: max(opt.Replicas, 1), maxBytes: cmp.Or(opt.MaxBytes, StreamMaxBytesDefault)}
	if err := q.setupStreams(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// Conn returns the NATS connection.
func (q *Queue) Conn() *nats.Conn { return q.nc }

// JetStream returns the JetStream context.
func (q *Queue) JetStream() jetstream.JetStream { return q.js }

func (q *Queue) setupStreams(ctx context.Context) error {
	for kind, spec := range specs {
		err := q.createOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        spec.Stream,
			Description: "callqueue " + string(kind) + " intake",
			Subjects:    []string{subjectPrefix + "." + string(kind) + ".*"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    q.replicas,
			Duplicates:  spec.Duplicates,
			MaxAge:      spec.MaxAge,
			MaxMsgSize:  spec.MaxMsgSize,
			MaxBytes:    q.maxBytes,
			Discard:     jetstream.DiscardOld,
		})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", spec.Stream, err)
		}
	}
	err := q.createOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        dlqStream,
		Description: "callqueue messages that could not be processed",
		Subjects:    []string{subjectPrefix + ".dlq.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    q.replicas,
		MaxAge:      30 * 24 * time.Hour,
		MaxMsgSize:  MaxPayload,
		MaxBytes:    q.maxBytes,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", dlqStream, err)
	}
	return nil
}

// errCodeNoSuitablePeers is JetStream's answer to a replicated stream's
// creation while the cluster is still forming (a peer not yet current).
const errCodeNoSuitablePeers jetstream.ErrorCode = 10005

// createOrUpdateStream creates or updates a stream, waiting out a cluster
// that is still forming: its peers come up one by one, and a process
// started with them would otherwise fail to start.
func (q *Queue) createOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := q.js.CreateOrUpdateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeNoSuitablePeers || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Message is one event to publish.
type Message struct {
	Kind          Kind
	IntegrationID uuid.UUID
	// MsgID is the natural key: a repeated publish within the stream's
	// duplicate window is stored once.
	MsgID   string
	Data    []byte
	TraceID string
	Header  nats.Header
}

// Ack is the stream's receipt for a publish.
type Ack struct {
	Sequence  uint64
	Duplicate bool
}

// publishTimeout bounds a publish whose context has no deadline, so that
// a webhook answers 503 rather than hang while JetStream is away.
const publishTimeout = 5 * time.Second

// ErrUnavailable wraps failures to store a message: the caller must not
// report success.
var ErrUnavailable = errors.New("queue unavailable")

// Publish stores m durably and returns once the stream has acknowledged it.
func (q *Queue) Publish(ctx context.Context, m Message) (Ack, error) {
	msg := nats.NewMsg(Subject(m.Kind, m.IntegrationID))
	msg.Data = m.Data
	for k, v := range m.Header {
		msg.Header[k] = v
	}
	if m.TraceID != "" {
		msg.Header.Set(HeaderTraceID, m.TraceID)
	}
	// The worker that takes the message continues the publisher's trace.
	tracing.InjectNATS(ctx, msg.Header)
	var opts []jetstream.PublishOpt
	if m.MsgID != "" {
		opts = append(opts, jetstream.WithMsgID(m.MsgID))
	}
	opts = append(opts, jetstream.WithExpectStream(specs[m.Kind].Stream))
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	// Disconnected: fail at once rather than wait for the deadline. The
	// connection keeps no reconnect buffer (ConnectOptions), so a publish
	// that fails is never stored later.
	if !q.nc.IsConnected() {
		return Ack{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.Kind, nats.ErrDisconnected)
	}
	ack, err := q.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: publish %s: %w", ErrUnavailable, m.Kind, err)
	}
	return Ack{Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Stored returns a stored message's headers, to answer a duplicate publish
// with what the original carried.
func (q *Queue) Stored(ctx context.Context, kind Kind, seq uint64) (nats.Header, error) {
	s, err := q.js.Stream(ctx, specs[kind].Stream)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("%w: get %s #%d: %w", ErrUnavailable, kind, seq, err)
	}
	return raw.Header, nil
}

// Ping checks JetStream answers.
func (q *Queue) Ping(ctx context.Context) error {
	if !q.nc.IsConnected() {
		return errors.New("nats: not connected")
	}
	_, err := q.js.AccountInfo(ctx)
	return err
}

// Kick asks the dispatchers to look at an integration now (a slot was freed
// or a call queued). It is a hint, not durable: dispatchers also sweep.
func (q *Queue) Kick(integrationID uuid.UUID) {
	_ = q.nc.Publish(kickSubject+integrationID.String(), nil) // a lost kick is covered by the sweep
}

// SubscribeKicks calls fn for every kick; one subscriber of the group gets each.
func (q *Queue) SubscribeKicks(fn func(uuid.UUID)) (*nats.Subscription, error) {
	return q.nc.QueueSubscribe(kickSubject+"*", "dispatchers", func(m *nats.Msg) {
		if id, err := IntegrationFromSubject(m.Subject); err == nil {
			fn(id)
		}
	})
}

// DeadLetters counts the messages in the dead-letter stream.
func (q *Queue) DeadLetters(ctx context.Context) (uint64, error) {
	s, err := q.js.Stream(ctx, dlqStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
