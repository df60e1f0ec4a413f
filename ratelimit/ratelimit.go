// Package ratelimit keeps one client, or one tenant, from taking the
// service for itself: token buckets per integration and per client address
// on the webhooks, per client address and per token on the admin API.
// A request over a limit is answered 429 in the contract's error shape
// with Retry-After, before any work is done for it.
//
// Limits are per process (replicas each count their own) and sized as
// flood guards: the defaults sit above what one process serves, so a
// legitimate tenant never meets them, while a runaway client is cut off
// before it queues behind everyone else. Every set of buckets is bounded
// in memory (Keyed).
package ratelimit

import (
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/callqueue/callqueue/clientip"
	"github.com/callqueue/callqueue/jsonhttp"
)

// Kind is the class of endpoint a request is for.
type Kind string

// Kinds of endpoints with limits.
const (
	KindWebhook Kind = "webhook" // /{slug}/...
	KindAPI     Kind = "api"     // /api/...
)

// What a limit is kept per (the "limit" label of the metric).
const (
	PerIntegration = "integration"
	PerIP          = "ip"
	PerToken       = "token"
)

// Rules are the limits of one process.
type Rules struct {
	// WebhookIntegration is per integration (the slug in the path);
	// WebhookIP per client address (a voice platform posts every
	// tenant's events from a few addresses, so it is the larger one).
	WebhookIntegration Rule
	WebhookIP          Rule
	// APIIP is per client address, APIToken per bearer token presented.
	APIIP    Rule
	APIToken Rule
}

// Defaults: flood guards above what one process serves (about 10,000
// webhooks a second on two cores), so that they never limit a tenant the
// service can actually carry.
var (
	WebhookIntegrationDefault = Rule{PerSecond: 10_000, Burst: 20_000}
	WebhookIPDefault          = Rule{PerSecond: 20_000, Burst: 40_000}
	APIIPDefault              = Rule{PerSecond: 2_000, Burst: 4_000}
	APITokenDefault           = Rule{PerSecond: 2_000, Burst: 4_000}
)

// RulesDefault are the limits when nothing is configured.
func RulesDefault() Rules {
	return Rules{WebhookIntegration: WebhookIntegrationDefault, WebhookIP: WebhookIPDefault,
		APIIP: APIIPDefault, APIToken: APITokenDefault}
}

// Limits applies Rules to requests.
type Limits struct {
	webhookIntegration *Keyed[string]
	webhookIP          *Keyed[netip.Addr]
	apiIP              *Keyed[netip.Addr]
	apiToken           *Keyed[[16]byte]
	now                func() time.Time
	// limited counts refused requests by kind and limit.
	limited func(kind Kind, per string)
}

// New returns limits under rules; limited (may be nil) is told of every
// refused request.
func New(rules Rules, limited func(kind Kind, per string)) *Limits {
	if limited == nil {
		limited = func(Kind, string) {}
	}
	return &Limits{
		webhookIntegration: NewKeyed[string](rules.WebhookIntegration, 0),
		webhookIP:          NewKeyed[netip.Addr](rules.WebhookIP, 0),
		apiIP:              NewKeyed[netip.Addr](rules.APIIP, 0),
		apiToken:           NewKeyed[[16]byte](rules.APIToken, 0),
		now:                time.Now,
		limited:            limited,
	}
}

// Allow checks r against the limits of kind. When a limit is reached it
// answers 429 with Retry-After and returns false; the caller then stops.
func (l *Limits) Allow(w http.ResponseWriter, r *http.Request, kind Kind) bool {
	now := l.now()
	ip := addressKey(clientip.ClientIP(r))
	var ok bool
	var wait time.Duration
	per := PerIP
	switch kind {
	case KindWebhook:
		if ok, wait = l.webhookIP.Allow(ip, now); ok {
			per = PerIntegration
			ok, wait = l.webhookIntegration.Allow(slugKey(r.URL.Path), now)
		}
	case KindAPI:
		if ok, wait = l.apiIP.Allow(ip, now); ok {
			if token, present := bearer(r); present {
				per = PerToken
				ok, wait = l.apiToken.Allow(sha256Prefix(token), now)
			}
		}
	default:
		return true
	}
	if ok {
		return true
	}
	l.limited(kind, per)
	seconds := int(wait / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(seconds))
	jsonhttp.WriteError(w, jsonhttp.Errorf(http.StatusTooManyRequests, "rate_limited", "",
		"too many requests; retry after %d s", seconds))
	return false
}

// addressKey is the bucket of a client address: IPv4 addresses one by one,
// IPv6 by /64, the block one subscriber is given (anyone holding a /64 can
// send from 2^64 addresses).
func addressKey(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// malformedSlug is the one bucket of paths whose first segment cannot be
// a slug: such requests are refused anyway, and must not mint keys.
const malformedSlug = "\x00malformed"

// slugKey is the integration a /{slug}/... path names, as a key of its
// own memory (not a slice of a path that may be 64 KiB long).
func slugKey(path string) string {
	slug, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !slugShaped(slug) {
		return malformedSlug
	}
	return strings.Clone(slug)
}

// slugShaped matches the contract's ^[a-z0-9][a-z0-9-]{0,62}$.
func slugShaped(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), true
	}
	return "", false
}

// sha256Prefix keys a token by a hash: a fixed-size key that does not keep
// the secret itself in memory.
func sha256Prefix(token string) [16]byte {
	sum := sha256.Sum256([]byte(token))
	return [16]byte(sum[:16])
}
