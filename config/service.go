// Package config holds the two kinds of configuration callqueue reads:
// the service's own settings, taken from the environment (Service), and
// each integration's key-value settings with their defaults and validation
// (the call_handling, voice, crm_fields, crm and agent keys).
package config

import (
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/metrics"
	"github.com/callqueue/callqueue/queue"
	"github.com/callqueue/callqueue/ratelimit"
)

// Defaults for the service settings.
const (
	DataDirDefault   = "./data"
	HTTPAddrDefault  = ":8080"
	LogLevelDefault  = "info"
	LogFormatDefault = "json"
	TimezoneDefault  = "Europe/Kyiv"
	// NATSSyncDefault is the embedded server's storage sync policy. A webhook's
	// 2xx promises the event survives, and an embedded single node has no
	// replica to recover from, so every write is fsynced before it is acked
	// (the Jepsen 2025 NATS analysis showed acked writes lost to the default
	// two-minute sync_interval on power loss).
	NATSSyncDefault = "always"
)

// Service is the process configuration, read from the environment.
type Service struct {
	DatabaseURL string
	NATSURL     string
	// NATSListen, when set, makes the embedded NATS server listen on this
	// host:port so that other processes (replicas, the nats CLI) can reach it.
	NATSListen string
	// NATSSync is "always" or a Go duration for the embedded server's sync_interval.
	NATSSync string
	// NATSReplicas is the stream replica count on an external cluster.
	NATSReplicas int
	// StreamMaxBytes bounds the bytes each stream keeps (MiB in
	// CALLQUEUE_STREAM_MAX_MB); zero is the queue's default.
	StreamMaxBytes int64
	DataDir        string
	HTTPAddr       string
	SecretKey      []byte
	LogLevel       string
	LogFormat      string
	Timezone       string
	// AllowPrivateEgress lets outbound requests to integration-supplied URLs
	// reach loopback, private and unspecified addresses (never link-local).
	AllowPrivateEgress bool
	// MetricsToken, when set, is required as a bearer token on /metrics.
	MetricsToken string
	// Metrics chooses which integrations have series of their own
	// (CALLQUEUE_METRICS_PER_INTEGRATION, CALLQUEUE_METRICS_TOP_INTEGRATIONS).
	Metrics metrics.Options
	// TrustedProxies lists the CIDR prefixes (or addresses) of proxies
	// whose X-Forwarded-For/-Proto/-Host and X-Real-IP are believed.
	TrustedProxies string
	// NATSAuth signs in to NATS: a credentials file or nkey seed and TLS
	// for NATS_URL; the token for the embedded server's listener (and for
	// NATS_URL pointing at another process's embedded server).
	NATSAuth queue.Auth
	// RateLimits are the per-process request limits (CALLQUEUE_RATE_*).
	// The zero value limits nothing; FromEnv starts from the defaults.
	RateLimits ratelimit.Rules
	// UnverifiedBodyBytes bounds the request bodies held, all requests
	// together, before their signature is verified (0: the default;
	// negative: no bound, which only a benchmark sets, in code).
	UnverifiedBodyBytes int64
	// DB bounds the database connection (CALLQUEUE_DB_*); a zero field
	// takes the store's default.
	DB DatabaseBounds
	// TraceURLTemplate, when set, links each trace id the console shows to
	// the operator's trace viewer: {traceId} is replaced by the id
	// (CALLQUEUE_TRACE_URL_TEMPLATE).
	TraceURLTemplate string
	// CallerCacheEntries caps the caller contexts each process keeps a
	// copy of for agent-init (CALLQUEUE_CALLER_CACHE_ENTRIES): 0 takes
	// CallerCacheEntriesDefault, negative keeps none.
	CallerCacheEntries int

	badRateLimits         []string // variables FromEnv could not read
	badCallerCacheEntries bool
}

// Caller contexts a process keeps a copy of: the default, and the most
// CALLQUEUE_CALLER_CACHE_ENTRIES takes. Each is about half a KiB, a KiB
// once read (three CRM fields and a call's variables).
const (
	CallerCacheEntriesDefault = 100_000
	CallerCacheEntriesMax     = 10_000_000
)

// DatabaseBounds keep a silent database from hanging the process: how long
// opening a connection, one statement (the server's statement_timeout)
// and unacknowledged data on a connection (TCP_USER_TIMEOUT) may take.
type DatabaseBounds struct {
	ConnectTimeout   time.Duration
	StatementTimeout time.Duration
	TCPUserTimeout   time.Duration
}

// The database bounds' environment variables and their allowed ranges.
var databaseBounds = []struct {
	name     string
	min, max time.Duration
	field    func(*DatabaseBounds) *time.Duration
}{
	{"CALLQUEUE_DB_CONNECT_TIMEOUT", time.Second, time.Minute, func(b *DatabaseBounds) *time.Duration { return &b.ConnectTimeout }},
	{"CALLQUEUE_DB_STATEMENT_TIMEOUT", time.Second, time.Hour, func(b *DatabaseBounds) *time.Duration { return &b.StatementTimeout }},
	{"CALLQUEUE_DB_TCP_USER_TIMEOUT", time.Second, 10 * time.Minute, func(b *DatabaseBounds) *time.Duration { return &b.TCPUserTimeout }},
}

// ErrMissing reports a required variable that is not set.
type ErrMissing struct{ Name string }

func (e *ErrMissing) Error() string { return e.Name + " is not set" }

// FromEnv reads the service settings. Required values are checked by Validate
// so that commands needing only some of them (migrate, token) can run.
func FromEnv() Service {
	s := Service{
		DatabaseURL: os.Getenv("DATABASE_URL"),
		NATSURL:     os.Getenv("NATS_URL"),
		NATSListen:  os.Getenv("CALLQUEUE_NATS_LISTEN"),
		NATSSync:    cmp.Or(os.Getenv("CALLQUEUE_NATS_SYNC"), NATSSyncDefault),
		DataDir:     cmp.Or(os.Getenv("CALLQUEUE_DATA_DIR"), DataDirDefault),
		HTTPAddr:    cmp.Or(os.Getenv("CALLQUEUE_HTTP_ADDR"), HTTPAddrDefault),
		LogLevel:    cmp.Or(os.Getenv("CALLQUEUE_LOG_LEVEL"), LogLevelDefault),
		LogFormat:   cmp.Or(os.Getenv("CALLQUEUE_LOG_FORMAT"), LogFormatDefault),
		Timezone:    cmp.Or(os.Getenv("CALLQUEUE_TIMEZONE"), TimezoneDefault),

		AllowPrivateEgress: envBool("CALLQUEUE_ALLOW_PRIVATE_EGRESS"),
		MetricsToken:       os.Getenv("CALLQUEUE_METRICS_TOKEN"),
		TrustedProxies:     os.Getenv("CALLQUEUE_TRUSTED_PROXIES"),
		TraceURLTemplate:   strings.TrimSpace(os.Getenv("CALLQUEUE_TRACE_URL_TEMPLATE")),
		NATSAuth: queue.Auth{Creds: os.Getenv("CALLQUEUE_NATS_CREDS"), NkeySeed: os.Getenv("CALLQUEUE_NATS_NKEY"),
			Token: os.Getenv("CALLQUEUE_NATS_TOKEN"), TLSCA: os.Getenv("CALLQUEUE_NATS_TLS_CA"),
			TLSCert: os.Getenv("CALLQUEUE_NATS_TLS_CERT"), TLSKey: os.Getenv("CALLQUEUE_NATS_TLS_KEY")},
	}
	s.RateLimits, s.badRateLimits = rateLimitsFromEnv()
	s.Metrics.PerIntegration = metrics.PerIntegration(cmp.Or(strings.TrimSpace(os.Getenv("CALLQUEUE_METRICS_PER_INTEGRATION")),
		string(metrics.PerIntegrationDefault)))
	s.Metrics.TopIntegrations = metrics.TopIntegrationsDefault
	if raw := strings.TrimSpace(os.Getenv("CALLQUEUE_METRICS_TOP_INTEGRATIONS")); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			n = -1 // Validate names the variable
		}
		s.Metrics.TopIntegrations = n
	}
	if raw := strings.TrimSpace(os.Getenv("CALLQUEUE_UNVERIFIED_BODY_BYTES")); raw != "" {
		// Whole bytes only: "10MB" is refused, not read as 10.
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 {
			n = -1 // Validate names the variable
		}
		s.UnverifiedBodyBytes = n
	}
	if raw := strings.TrimSpace(os.Getenv("CALLQUEUE_CALLER_CACHE_ENTRIES")); raw != "" {
		n, err := strconv.Atoi(raw)
		switch {
		case err != nil || n < 0 || n > CallerCacheEntriesMax:
			s.badCallerCacheEntries = true // Validate names the variable
		case n == 0:
			s.CallerCacheEntries = -1 // no copy
		default:
			s.CallerCacheEntries = n
		}
	}
	if _, err := fmt.Sscan(cmp.Or(os.Getenv("CALLQUEUE_NATS_REPLICAS"), "1"), &s.NATSReplicas); err != nil {
		s.NATSReplicas = 0 // Validate names the variable
	}
	var streamMB int64
	if _, err := fmt.Sscan(cmp.Or(os.Getenv("CALLQUEUE_STREAM_MAX_MB"), fmt.Sprint(StreamMaxMBDefault)), &streamMB); err != nil {
		streamMB = -1 // Validate names the variable
	}
	s.StreamMaxBytes = streamMB << 20
	for _, v := range databaseBounds {
		if raw := strings.TrimSpace(os.Getenv(v.name)); raw != "" {
			d, err := time.ParseDuration(raw)
			if err != nil || d < v.min || d > v.max {
				d = -1 // Validate names the variable
			}
			*v.field(&s.DB) = d
		}
	}
	if raw := os.Getenv("CALLQUEUE_SECRET_KEY"); raw != "" {
		s.SecretKey, _ = ParseSecretKey(raw)
	}
	return s
}

// Stream byte budget per stream, in MiB: the smallest holds a few of the
// largest messages (queue.MaxPayload); the default a day of heavy intake.
const (
	StreamMaxMBDefault = 1024
	StreamMaxMBMin     = 64
	StreamMaxMBMax     = 1 << 20
)

// envBool reads a boolean variable: "true", "1" or "yes" (any case) is true.
func envBool(name string) bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(name))) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// RequireDatabase checks DATABASE_URL.
func (s Service) RequireDatabase() error {
	if s.DatabaseURL == "" {
		return &ErrMissing{Name: "DATABASE_URL"}
	}
	return nil
}

// Validate checks everything serve needs.
func (s Service) Validate() error {
	if err := s.RequireDatabase(); err != nil {
		return err
	}
	if len(s.SecretKey) != 32 {
		if os.Getenv("CALLQUEUE_SECRET_KEY") == "" {
			return &ErrMissing{Name: "CALLQUEUE_SECRET_KEY"}
		}
		return errors.New("CALLQUEUE_SECRET_KEY must be 32 bytes, base64 or hex encoded")
	}
	if _, err := time.LoadLocation(s.Timezone); err != nil {
		return fmt.Errorf("CALLQUEUE_TIMEZONE: %w", err)
	}
	if _, err := s.SyncPolicy(); err != nil {
		return err
	}
	if err := s.NATSAuth.Validate(); err != nil {
		return err
	}
	if err := validateRateLimits(s.badRateLimits); err != nil {
		return err
	}
	if err := s.Metrics.Validate(); err != nil {
		return err
	}
	if s.badCallerCacheEntries {
		return fmt.Errorf("CALLQUEUE_CALLER_CACHE_ENTRIES must be a whole number from 0 to %d", CallerCacheEntriesMax)
	}
	if s.UnverifiedBodyBytes < 0 {
		return errors.New("CALLQUEUE_UNVERIFIED_BODY_BYTES must be a positive number of bytes")
	}
	for _, v := range databaseBounds {
		// Zero (unset, or a Service built in code) takes the store's default.
		if d := *v.field(&s.DB); d != 0 && (d < v.min || d > v.max) {
			return fmt.Errorf("%s must be a duration between %v and %v", v.name, v.min, v.max)
		}
	}
	if _, err := clientip.ParseProxies(s.TrustedProxies); err != nil {
		return fmt.Errorf("CALLQUEUE_TRUSTED_PROXIES: %w", err)
	}
	if err := ValidateTraceURLTemplate(s.TraceURLTemplate); err != nil {
		return fmt.Errorf("CALLQUEUE_TRACE_URL_TEMPLATE: %w", err)
	}
	if s.NATSReplicas < 1 || s.NATSReplicas > 5 {
		return errors.New("CALLQUEUE_NATS_REPLICAS must be between 1 and 5")
	}
	// Zero (a Service built in code) takes the queue's default.
	if s.StreamMaxBytes != 0 && (s.StreamMaxBytes < StreamMaxMBMin<<20 || s.StreamMaxBytes > StreamMaxMBMax<<20) {
		return fmt.Errorf("CALLQUEUE_STREAM_MAX_MB must be between %d and %d", StreamMaxMBMin, StreamMaxMBMax)
	}
	return nil
}

// SyncPolicy returns (0, nil) for "always", else the sync interval.
func (s Service) SyncPolicy() (time.Duration, error) {
	if strings.EqualFold(s.NATSSync, "always") {
		return 0, nil
	}
	d, err := time.ParseDuration(s.NATSSync)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("CALLQUEUE_NATS_SYNC must be \"always\" or a positive duration, got %q", s.NATSSync)
	}
	return d, nil
}

// ParseSecretKey decodes a 32-byte key given as base64 (std or URL) or hex.
func ParseSecretKey(raw string) ([]byte, error) {
	raw = strings.TrimSpace(raw)
	if b, err := hex.DecodeString(raw); err == nil && len(b) == 32 {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("secret key must be 32 bytes, base64 or hex encoded")
}

// TraceIDPlaceholder is where a trace URL template takes the trace id.
const TraceIDPlaceholder = "{traceId}"

// ValidateTraceURLTemplate accepts "" (no links) or an absolute http(s)
// URL that holds {traceId}: the console puts the link in front of people,
// so nothing else (a javascript: URL, a relative path) may come of it.
func ValidateTraceURLTemplate(t string) error {
	if t == "" {
		return nil
	}
	if !strings.Contains(t, TraceIDPlaceholder) {
		return fmt.Errorf("must contain %s, where the trace id goes", TraceIDPlaceholder)
	}
	u, err := url.Parse(strings.ReplaceAll(t, TraceIDPlaceholder, "4bf92f3577b34da6a3ce929d0e0e4736"))
	if err != nil {
		return errors.New("is not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}
