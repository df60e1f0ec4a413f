// Package webhooks receives the per-integration endpoints (contract §4):
// call-originate, call-events, agent-init and agent-postcall. Receivers are
// thin — authenticate, validate, publish to JetStream, answer — and answer
// 2xx only after JetStream has acknowledged the event. agent-init alone
// answers synchronously, from Postgres, within its deadline.
package webhooks

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/callqueue/callqueue/callerctx"
	"github.com/callqueue/callqueue/elevenlabs"
	"github.com/callqueue/callqueue/jsonhttp"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/pgtext"
	"github.com/callqueue/callqueue/phone"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/ratelimit"
	"github.com/callqueue/callqueue/store"
	"github.com/callqueue/callqueue/tracing"
	"github.com/callqueue/callqueue/web/apidocs"
)

// Body limits (contract §4).
const (
	MaxBody         = 1 << 20
	MaxPostcallBody = 25 << 20
	// UnverifiedPerClient is the most of the unverified budget one client
	// address may hold: one largest post-call and one more webhook, so that
	// one address cannot take it all.
	UnverifiedPerClient = MaxPostcallBody + MaxBody
)

// Publisher stores events durably.
type Publisher interface {
	Publish(ctx context.Context, m queue.Message) (queue.Ack, error)
	Stored(ctx context.Context, kind queue.Kind, seq uint64) (nats.Header, error)
}

// EventPublisher stores call events, several webhooks' to one message
// when they arrive together (queue.Batcher).
type EventPublisher interface {
	PublishEvent(ctx context.Context, integrationID uuid.UUID, ev queue.EventBody) error
}

// RetryRunner puts due retries back in the queue now (cron/trigger).
type RetryRunner interface {
	RunRetries(ctx context.Context, integrationID uuid.UUID) (int, error)
}

// Enricher finds what is known about a caller for agent-init (the CRM's
// variables and, for a warmed outbound call, the call's own) within ctx's
// deadline; ok is false when nothing could be had in time.
type Enricher interface {
	Context(ctx context.Context, integrationID uuid.UUID, phone string) (callerctx.Caller, bool)
}

// Handler serves the per-integration endpoints.
type Handler struct {
	dir      *Directory
	store    *store.Store
	pub      Publisher
	events   EventPublisher
	metrics  *metrics.Metrics
	log      zerolog.Logger
	now      func() time.Time
	retries  RetryRunner
	enricher Enricher
	health   func(ctx context.Context, in Integration) (bool, map[string]any)
	kicker   Kicker
	limits   IntegrationLimiter
	budget   UnverifiedBudget
	// callIDKey keys the call ids derived from an Idempotency-Key.
	callIDKey []byte
	// publishDurations caches PublishDuration's series by kind.
	publishDurations sync.Map // queue.Kind → prometheus.Observer
	// AgentInitDeadline bounds agent-init's answer.
	AgentInitDeadline time.Duration
}

// Deps are the Handler's collaborators.
type Deps struct {
	Directory *Directory
	Store     *store.Store
	Publisher Publisher
	Events    EventPublisher
	Metrics   *metrics.Metrics
	Log       zerolog.Logger
	Now       func() time.Time
	Retries   RetryRunner
	Enricher  Enricher
	// Health reports an integration's checks for GET /{slug}/health.
	Health func(ctx context.Context, in Integration) (bool, map[string]any)
	// Kicker, when set, asks dispatchers to look at an integration that
	// setup may have made ready to dial.
	Kicker Kicker
	// Limits, when set, charges authenticated requests to their
	// integration's rate limit (anonymous ones never spend it).
	Limits IntegrationLimiter
	// UnverifiedBodies bounds the memory of bodies read before their
	// signature is checked (nil: ratelimit.UnverifiedBodyBytesDefault).
	UnverifiedBodies UnverifiedBudget
	// CallIDKey keys the call ids derived from an Idempotency-Key
	// (CallIDKey of the server's secret). Without it they are stable only
	// within this process.
	CallIDKey []byte
}

// IntegrationLimiter is the per-integration rate limit (ratelimit.Limits):
// false when the integration's bucket is empty, with the 429 written.
type IntegrationLimiter interface {
	AllowIntegration(w http.ResponseWriter, integrationID [16]byte) bool
}

// Kicker asks dispatchers to look at an integration now.
type Kicker interface{ Kick(integrationID uuid.UUID) }

// AgentInitDeadlineDefault is agent-init's answer deadline.
const AgentInitDeadlineDefault = 1500 * time.Millisecond

// New returns the per-integration handler.
func New(d Deps) *Handler {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.UnverifiedBodies == nil {
		d.UnverifiedBodies = ratelimit.NewBudget(ratelimit.UnverifiedBodyBytesDefault, UnverifiedPerClient)
	}
	if len(d.CallIDKey) == 0 {
		d.CallIDKey = randomCallIDKey()
	}
	return &Handler{dir: d.Directory, store: d.Store, pub: d.Publisher, events: d.Events, metrics: d.Metrics, log: d.Log, now: d.Now,
		retries: d.Retries, enricher: d.Enricher, health: d.Health, kicker: d.Kicker, limits: d.Limits, budget: d.UnverifiedBodies,
		callIDKey:         d.CallIDKey,
		AgentInitDeadline: AgentInitDeadlineDefault}
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("POST /{slug}/webhook/call-originate", h.endpoint("call-originate", MaxBody, authToken, h.callOriginate))
	mux.Handle("POST /{slug}/webhook/call-events", h.endpoint("call-events", MaxBody, authToken, h.callEvents))
	mux.Handle("POST /{slug}/webhook/agent-init", h.endpoint("agent-init", MaxBody, authToken, h.agentInit))
	mux.Handle("POST /{slug}/webhook/agent-postcall", h.endpoint("agent-postcall", MaxPostcallBody, authSignature, h.agentPostcall))
	mux.Handle("POST /{slug}/cron/trigger", h.endpoint("cron-trigger", MaxBody, authToken, h.cronTrigger))
	mux.Handle("GET /{slug}/health", h.endpoint("health", 0, authNone, h.integrationHealth))
	mux.Handle("POST /{slug}/setup", h.endpoint("setup", MaxBody, authToken, h.setup))
	mux.Handle("GET /{slug}/openapi.json", h.document("openapi", h.serveOpenAPI))
	mux.Handle("GET /{slug}/docs", h.document("docs", h.serveDocs))
	mux.Handle("GET /{slug}/docs/assets/{file}", apidocs.Assets())
}

type authMode int

const (
	authNone authMode = iota
	authToken
	// authSignature: the ElevenLabs signature when the integration has a
	// signing secret, the webhook token otherwise.
	authSignature
)

// request is one authenticated webhook call.
type request struct {
	in      Integration
	body    []byte
	header  http.Header
	query   func(string) string
	traceID string
	// logger is the handler's; log adds the request's trace and
	// integration to each entry, so nothing is built for entries that are
	// never written.
	logger zerolog.Logger
	// authenticated: the webhook token (or signature) was presented, even
	// where the endpoint does not require it.
	authenticated bool
}

// log starts an entry at level carrying the request's trace and
// integration; nil (a no-op) when the level is not logged.
func (r request) log(level zerolog.Level) *zerolog.Event {
	e := r.logger.WithLevel(level) //nolint:zerologlint // a builder: the caller sends the entry
	if e == nil {
		return nil
	}
	e = e.Str("trace_id", r.traceID)
	if r.in.ID != uuid.Nil {
		e = e.Stringer("integration_id", r.in.ID)
	}
	return e
}

// query reads the request's URL query, parsed only when asked.
func query(u *url.URL) func(string) string {
	return func(k string) string {
		if u.RawQuery == "" {
			return ""
		}
		return u.Query().Get(k)
	}
}

type handlerFunc func(ctx context.Context, r request) (int, any, error)

func (h *Handler) endpoint(name string, limit int64, auth authMode, fn handlerFunc) http.Handler {
	spanName := "webhook " + name
	// Label lookups are hashed on every call: the endpoint's series are
	// found once (its duration) or once per status code, at the first
	// request (a handler registered only for its routes has no metrics).
	duration := sync.OnceValue(func() prometheus.Observer { return h.metrics.WebhookDuration.WithLabelValues(name) })
	var requests sync.Map // status code → prometheus.Counter
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The caller's traceparent is continued, else a trace starts here.
		ctx, span := tracing.Start(tracing.ExtractHTTP(r.Context(), r.Header), spanName, trace.SpanKindServer)
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		code := h.serve(w, r, limit, auth, fn)
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("http.response.status_code", code))
			if code >= http.StatusInternalServerError {
				tracing.Fail(span, http.StatusText(code))
			}
		}
		span.End()
		c, ok := requests.Load(code)
		if !ok {
			c, _ = requests.LoadOrStore(code, h.metrics.WebhookRequests.WithLabelValues(name, strconv.Itoa(code)))
		}
		c.(prometheus.Counter).Inc()
		duration().Observe(time.Since(start).Seconds())
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, limit int64, auth authMode, fn handlerFunc) int {
	// With tracing on, the history's trace id is the trace's own.
	traceID := cmp.Or(tracing.TraceID(r.Context()), TraceID(r))
	w.Header().Set("X-Trace-Id", traceID)
	fail := func(err error) int {
		var e *jsonhttp.Error
		if !errors.As(err, &e) {
			h.log.Error().Err(err).Str("trace_id", traceID).Str("path", r.URL.Path).Msg("webhook failed")
		}
		jsonhttp.WriteError(w, err)
		if e != nil {
			return e.Status
		}
		return http.StatusInternalServerError
	}
	in, err := h.dir.Lookup(r.Context(), r.PathValue("slug"))
	if errors.Is(err, store.ErrNotFound) {
		return fail(jsonhttp.Errorf(http.StatusNotFound, "not_found", "", "no integration %q", r.PathValue("slug")))
	}
	if err != nil {
		h.log.Error().Err(err).Str("trace_id", traceID).Msg("integration lookup failed")
		return fail(jsonhttp.Unavailable("database"))
	}
	// Authenticate before reading the body (up to 25 MiB for post-calls):
	// an anonymous client must not make us hold one. A signature covers the
	// body, so its header is checked first and its hash after reading the
	// body, which is held meanwhile against the unverified budget.
	signed := auth == authSignature && in.SignatureSecret != ""
	badSignature := func(err error) int {
		return fail(jsonhttp.Errorf(http.StatusUnauthorized, "bad_signature", "", "%s: %v", elevenlabs.SignatureHeader, err))
	}
	tokenPresented := store.TokenMatches(in.Token, presentedToken(r))
	switch {
	case signed:
		if err := elevenlabs.CheckHeader(r.Header.Get(elevenlabs.SignatureHeader), h.now()); err != nil {
			return badSignature(err)
		}
	case auth != authNone && !tokenPresented:
		return fail(jsonhttp.ErrUnauthorized)
	}
	authenticated := auth != authNone || tokenPresented
	// Only an authenticated request spends the integration's rate limit;
	// a signed one once its signature is verified, below.
	if authenticated && !signed && !h.allowIntegration(w, in) {
		return http.StatusTooManyRequests
	}
	var body []byte
	switch {
	case signed:
		var release func()
		body, release, err = readUnverified(w, r, limit, h.budget)
		if err != nil {
			return fail(err)
		}
		err = elevenlabs.Verify(in.SignatureSecret, r.Header.Get(elevenlabs.SignatureHeader), body, h.now())
		release() // verified or refused, the body is no longer anonymous memory
		if err != nil {
			return badSignature(err)
		}
		if !h.allowIntegration(w, in) {
			return http.StatusTooManyRequests
		}
	case limit > 0:
		if body, err = jsonhttp.ReadBody(w, r, limit); err != nil {
			return fail(err)
		}
	}
	tracing.Call(trace.SpanFromContext(r.Context()), in.ID, uuid.Nil, 0)
	status, resp, err := fn(r.Context(), request{in: in, body: body, header: r.Header, query: query(r.URL), traceID: traceID, logger: h.log,
		authenticated: authenticated})
	if err != nil {
		return fail(err)
	}
	if raw, ok := resp.(encodedJSON); ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(raw) // the client went away: nothing to do
		return status
	}
	jsonhttp.WriteJSON(w, status, resp)
	return status
}

// encodedJSON is an answer already encoded as jsonhttp.WriteJSON would
// encode it (newline included): the hot paths' answers, written without
// reflection.
type encodedJSON []byte

// MarshalJSON lets an encoded answer be part of another (the admin API's
// invoke wraps a built-in's answer).
func (e encodedJSON) MarshalJSON() ([]byte, error) { return bytes.TrimSuffix(e, []byte("\n")), nil }

// accepted is {"success": true} as jsonhttp.WriteJSON writes it.
var accepted = encodedJSON(`{"success":true}` + "\n")

// acceptedCall is {"success": true, "callId": id} as jsonhttp.WriteJSON
// writes it (keys sorted).
func acceptedCall(id uuid.UUID) encodedJSON {
	b := make([]byte, 0, 64)
	b = append(b, `{"callId":"`...)
	b = append(b, id.String()...)
	b = append(b, `","success":true}`+"\n"...)
	return b
}

// allowIntegration charges an authenticated request to its integration's
// rate limit; false when it is spent (the 429 written).
func (h *Handler) allowIntegration(w http.ResponseWriter, in Integration) bool {
	return h.limits == nil || h.limits.AllowIntegration(w, in.ID)
}

// presentedToken finds the webhook token in X-Webhook-Token, a bearer
// Authorization header or ?token=.
func presentedToken(r *http.Request) string {
	if t := r.Header.Get("X-Webhook-Token"); t != "" {
		return t
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return r.URL.Query().Get("token")
}

// TraceID takes the caller's request id (X-Request-Id, or the trace id of
// a W3C traceparent) or makes one.
func TraceID(r *http.Request) string {
	// Kept with what the request causes: it must be storable (pgtext).
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && pgtext.Valid(id) {
		return id
	}
	if tp := r.Header.Get("traceparent"); tp != "" {
		if parts := strings.Split(tp, "-"); len(parts) == 4 && len(parts[1]) == 32 && pgtext.Valid(parts[1]) {
			return parts[1]
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (h *Handler) publish(ctx context.Context, r request, m queue.Message) (queue.Ack, error) {
	m.IntegrationID, m.TraceID = r.in.ID, r.traceID
	start := time.Now()
	ack, err := h.pub.Publish(ctx, m)
	h.publishDuration(m.Kind).Observe(time.Since(start).Seconds())
	if err != nil {
		r.log(zerolog.ErrorLevel).Err(err).Str("kind", string(m.Kind)).Msg("publish failed")
		return ack, jsonhttp.Unavailable("queue")
	}
	return ack, nil
}

// bodyKey is "event:" + hashKey(integrationID.String(), string(body)),
// without copying the body or the parts.
func bodyKey(integrationID uuid.UUID, body []byte) string {
	var id [36]byte
	hex.Encode(id[0:8], integrationID[0:4])
	hex.Encode(id[9:13], integrationID[4:6])
	hex.Encode(id[14:18], integrationID[6:8])
	hex.Encode(id[19:23], integrationID[8:10])
	hex.Encode(id[24:], integrationID[10:])
	id[8], id[13], id[18], id[23] = '-', '-', '-', '-'
	zero := []byte{0}
	h := sha256.New()
	h.Write(id[:])
	h.Write(zero)
	h.Write(body)
	h.Write(zero)
	var sum [sha256.Size]byte
	var text [24]byte // 18 bytes in base64
	base64.RawURLEncoding.Encode(text[:], h.Sum(sum[:0])[:18])
	return "event:" + string(text[:])
}

// publishDuration is PublishDuration's series for kind, looked up once.
func (h *Handler) publishDuration(kind queue.Kind) prometheus.Observer {
	if o, ok := h.publishDurations.Load(kind); ok {
		return o.(prometheus.Observer)
	}
	o, _ := h.publishDurations.LoadOrStore(kind, h.metrics.PublishDuration.WithLabelValues(string(kind)))
	return o.(prometheus.Observer)
}

func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

func (h *Handler) callOriginate(ctx context.Context, r request) (int, any, error) {
	req, err := DecodeOriginate(r.body)
	if err != nil {
		return 0, nil, err
	}
	// Numbers are kept in E.164, read in the integration's own country when
	// they lack a country code, so keys and suppressions compare equal.
	if req.PhoneNumber, err = phone.Normalize(req.PhoneNumber, phone.Region(r.in.Agent.Locale)); err != nil {
		return 0, nil, jsonhttp.Invalid("phone_number", "phone_number cannot be read as a phone number (region %s)",
			cmp.Or(phone.Region(r.in.Agent.Locale), "none: give the country code"))
	}
	idemKey := strings.TrimSpace(r.header.Get("Idempotency-Key"))
	if len(idemKey) > 200 {
		return 0, nil, jsonhttp.Invalid("Idempotency-Key", "Idempotency-Key must be at most 200 characters")
	}
	body := queue.OriginateBody{PhoneNumber: req.PhoneNumber, RecordID: req.RecordID, Priority: req.Priority, Timezone: req.Timezone,
		DynamicVariables: req.DynamicVariables, ReceivedAt: h.now()}
	var msgID string
	switch {
	case idemKey != "":
		body.CallID = keyedCallID(h.callIDKey, r.in.ID, idemKey)
		msgID = "originate:idem:" + hashKey(r.in.ID.String(), idemKey)
		body.IdempotencyKeys = append(body.IdempotencyKeys, "idem:"+hashKey(idemKey))
	case req.RecordID != "":
		body.CallID = uuid.Must(uuid.NewV7())
		msgID = "originate:rec:" + hashKey(r.in.ID.String(), req.RecordID, req.PhoneNumber)
	default:
		body.CallID = uuid.Must(uuid.NewV7())
		msgID = "originate:" + body.CallID.String()
	}
	var recordKey string
	if req.RecordID != "" {
		recordKey = "rec:" + hashKey(req.RecordID, req.PhoneNumber)
		body.IdempotencyKeys = append(body.IdempotencyKeys, recordKey)
		// The record names the message even when a key is given: a later
		// request for the same record, with another key or none, is then a
		// duplicate in the stream and answered with this call's id. Under
		// its own message id the store would drop it as a duplicate, and
		// its answer would name a call that never exists.
		msgID = "originate:rec:" + hashKey(r.in.ID.String(), req.RecordID, req.PhoneNumber)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	ack, err := h.publish(ctx, r, queue.Message{Kind: queue.KindOriginate, MsgID: msgID, Data: data,
		Header: nats.Header{queue.HeaderCallID: {body.CallID.String()}}})
	if err != nil {
		return 0, nil, err
	}
	callID := body.CallID
	if ack.Duplicate && req.RecordID != "" {
		// The same record was taken before, perhaps under another key or
		// none: answer with its call id. (A duplicate named by its key alone
		// has the id derived from the key: nothing to look up.)
		if callID, err = h.originalCallID(ctx, r.in.ID, ack.Sequence, recordKey); err != nil {
			return 0, nil, jsonhttp.Unavailable("queue")
		}
	}
	r.log(zerolog.InfoLevel).Stringer("call_id", callID).Bool("duplicate", ack.Duplicate).Msg("call accepted")
	return http.StatusAccepted, acceptedCall(callID), nil
}

// originalCallID is the call id of the originate stored at seq: from the
// message's header, or, once the stream no longer holds it (evicted under
// its byte budget while the server still remembers its id), from the key
// the call was created under.
func (h *Handler) originalCallID(ctx context.Context, integrationID uuid.UUID, seq uint64, key string) (uuid.UUID, error) {
	hdr, err := h.pub.Stored(ctx, queue.KindOriginate, seq)
	if err == nil {
		if ids := hdr[queue.HeaderCallID]; len(ids) > 0 {
			return uuid.Parse(ids[0])
		}
	}
	id, lookupErr := h.store.OriginateRef(ctx, integrationID, key)
	if lookupErr != nil {
		return uuid.Nil, errors.Join(err, lookupErr)
	}
	return id, nil
}

func (h *Handler) callEvents(ctx context.Context, r request) (int, any, error) {
	req, err := DecodeCallEvent(r.body)
	if err != nil {
		return 0, nil, err
	}
	ev := queue.EventBody{EventType: req.EventType, CallRef: req.CallID, ConversationID: req.ConversationID,
		DurationSecs: req.DurationSecs, Reason: req.Reason, Metadata: req.Metadata, ReceivedAt: h.now(), TraceID: r.traceID,
		// Batched with other webhooks' events, each keeps its own trace.
		Traceparent: tracing.Traceparent(ctx),
		// The body's key: it identifies an event that names no attempt
		// (the workers identify the others by attempt and type).
		DedupeKey: bodyKey(r.in.ID, r.body)}
	start := time.Now()
	err = h.events.PublishEvent(ctx, r.in.ID, ev)
	h.publishDuration(queue.KindEvents).Observe(time.Since(start).Seconds())
	if errors.Is(err, queue.ErrTooLarge) {
		return 0, nil, jsonhttp.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "", "%v", err)
	}
	if err != nil {
		r.log(zerolog.ErrorLevel).Err(err).Msg("publish call event failed")
		return 0, nil, jsonhttp.Unavailable("queue")
	}
	return http.StatusAccepted, accepted, nil
}

func (h *Handler) cronTrigger(ctx context.Context, r request) (int, any, error) {
	var req struct {
		HandlerName string `json:"handlerName"`
	}
	if len(strings.TrimSpace(string(r.body))) > 0 {
		if err := decodeStrict(r.body, &req); err != nil {
			return 0, nil, err
		}
	}
	if req.HandlerName != "" && req.HandlerName != "retry" {
		return 0, nil, jsonhttp.Invalid("handlerName", "no scheduled handler %q; scheduled handlers: retry", req.HandlerName)
	}
	n, err := h.retries.RunRetries(ctx, r.in.ID)
	if err != nil {
		r.log(zerolog.ErrorLevel).Err(err).Msg("retry run failed")
		return 0, nil, jsonhttp.Unavailable("database")
	}
	return http.StatusOK, map[string]any{"success": true, "ran": []map[string]any{{"handlerName": "retry", "requeued": n}}}, nil
}

func (h *Handler) integrationHealth(ctx context.Context, r request) (int, any, error) {
	ok, checks := h.health(ctx, r.in)
	status, word := http.StatusOK, "ok"
	if !ok {
		status, word = http.StatusServiceUnavailable, "degraded"
	}
	if !r.authenticated {
		// Anyone who knows a slug may ask; only the token holder sees why.
		return status, map[string]any{"status": word}, nil
	}
	return status, map[string]any{"status": word, "checks": checks}, nil
}
