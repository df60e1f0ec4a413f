package service_test

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// webhookSender posts webhooks the way a dialler or CRM does: an answer
// other than 2xx, or none at all, is retried with backoff (the same body,
// the same Idempotency-Key) until it is taken (real senders go on for
// hours; a minute bounds the test); a 4xx other than 429 is a permanent
// refusal. It records every attempt, for what a test measures
// about the service's availability.
type webhookSender struct {
	c        *cluster
	deadline time.Duration

	mu       sync.Mutex
	attempts []attempt
}

// attempt is one request of a delivery.
type attempt struct {
	sent, answered time.Time
	taken          bool
}

func newWebhookSender(c *cluster) *webhookSender {
	return &webhookSender{c: c, deadline: time.Minute}
}

// deliver posts the webhook until it is taken and returns the answer.
func (s *webhookSender) deliver(name string, body any, headers map[string]string) ([]byte, error) {
	backoff := 25 * time.Millisecond
	give := time.Now().Add(s.deadline)
	for {
		sent := time.Now()
		code, raw, err := s.c.post(name, body, headers)
		taken := err == nil && code >= 200 && code < 300
		s.mu.Lock()
		s.attempts = append(s.attempts, attempt{sent: sent, answered: time.Now(), taken: taken})
		s.mu.Unlock()
		switch {
		case taken:
			return raw, nil
		case err == nil && code >= 400 && code < 500 && code != http.StatusTooManyRequests:
			return raw, fmt.Errorf("%s refused: %d %s", name, code, raw)
		case time.Now().After(give) && err != nil:
			return raw, fmt.Errorf("%s not taken in %s: %w", name, s.deadline, err)
		case time.Now().After(give):
			return raw, fmt.Errorf("%s not taken in %s: %d %s", name, s.deadline, code, raw)
		}
		time.Sleep(backoff)
		// Capped low so that the test sees when intake comes back to
		// within a quarter of a second.
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// refusals counts the attempts that were not taken.
func (s *webhookSender) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.attempts {
		if !a.taken {
			n++
		}
	}
	return n
}

// firstTakenAfter is when the first request sent at or after t was taken,
// and whether one was.
func (s *webhookSender) firstTakenAfter(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, a := range s.attempts {
		if a.taken && !a.sent.Before(t) && (first.IsZero() || a.answered.Before(first)) {
			first = a.answered
		}
	}
	return first, !first.IsZero()
}
