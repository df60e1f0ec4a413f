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
	// WebhookIntegration is per integration, charged only to requests
	// that authenticated; WebhookIP per client address, charged to every
	// request (a voice platform posts every
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
	webhookIntegration *Keyed[[16]byte]
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
		webhookIntegration: NewKeyed[[16]byte](rules.WebhookIntegration, 0),
		webhookIP:          NewKeyed[netip.Addr](rules.WebhookIP, 0),
		apiIP:              NewKeyed[netip.Addr](rules.APIIP, 0),
		apiToken:           NewKeyed[[16]byte](rules.APIToken, 0),
		now:                time.Now,
		limited:            limited,
	}
}

// Allow checks r against the limits of kind that hold before anything is
// known of the caller: per client address, and for the admin API per token
// presented. A webhook's per-integration limit is charged later, once the
// request has authenticated (AllowIntegration), so that anonymous traffic
// never spends a tenant's budget. When a limit is reached Allow answers
// 429 with Retry-After and returns false; the caller then stops.
func (l *Limits) Allow(w http.ResponseWriter, r *http.Request, kind Kind) bool {
	now := l.now()
	ip := addressKey(clientip.ClientIP(r))
	var ok bool
	var wait time.Duration
	per := PerIP
	switch kind {
	case KindWebhook:
		ok, wait = l.webhookIP.Allow(ip, now)
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
	return ok || l.refuse(w, kind, per, wait)
}

// AllowIntegration charges an authenticated webhook request to its
// integration's bucket, answering 429 with Retry-After when it is empty.
func (l *Limits) AllowIntegration(w http.ResponseWriter, integrationID [16]byte) bool {
	ok, wait := l.webhookIntegration.Allow(integrationID, l.now())
	return ok || l.refuse(w, KindWebhook, PerIntegration, wait)
}

// refuse answers 429 and reports it; it returns false.
func (l *Limits) refuse(w http.ResponseWriter, kind Kind, per string, wait time.Duration) bool {
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
