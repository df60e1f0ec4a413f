// Package breaker keeps one gobreaker circuit breaker per key (an
// integration) for an outbound peer, and reports state changes so they can
// be exported as metrics and shown in health checks.
package breaker

import (
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Settings tune every breaker of a Set.
type Settings struct {
	// Peer names what the breakers guard ("va", "crm", ...).
	Peer string
	// ConsecutiveFailures open a breaker.
	ConsecutiveFailures uint32
	// OpenFor is how long an open breaker rejects before probing.
	OpenFor time.Duration
	// IsSuccessful classifies errors that say nothing about the peer's
	// health (a 4xx rejection) as success.
	IsSuccessful func(error) bool
	// OnChange is told of every state change.
	OnChange func(key string, from, to gobreaker.State)
}

// Defaults for Settings.
const (
	ConsecutiveFailuresDefault = 5
	OpenForDefault             = 30 * time.Second
)

// ErrOpen is returned without calling the peer while the breaker is open.
var ErrOpen = errors.New("circuit breaker is open")

// Set holds the breakers of one peer, one per key.
type Set[T any] struct {
	settings Settings
	mu       sync.Mutex
	byKey    map[string]*gobreaker.CircuitBreaker[T]
}

// NewSet returns an empty set.
func NewSet[T any](s Settings) *Set[T] {
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = ConsecutiveFailuresDefault
	}
	if s.OpenFor <= 0 {
		s.OpenFor = OpenForDefault
	}
	return &Set[T]{settings: s, byKey: map[string]*gobreaker.CircuitBreaker[T]{}}
}

func (s *Set[T]) get(key string) *gobreaker.CircuitBreaker[T] {
	s.mu.Lock()
	defer s.mu.Unlock()
	cb, ok := s.byKey[key]
	if !ok {
		st := s.settings
		cb = gobreaker.NewCircuitBreaker[T](gobreaker.Settings{
			Name:        st.Peer + ":" + key,
			MaxRequests: 1,
			Timeout:     st.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= st.ConsecutiveFailures },
			IsSuccessful: func(err error) bool {
				return err == nil || (st.IsSuccessful != nil && st.IsSuccessful(err))
			},
			OnStateChange: func(_ string, from, to gobreaker.State) {
				if st.OnChange != nil {
					st.OnChange(key, from, to)
				}
			},
		})
		s.byKey[key] = cb
	}
	return cb
}

// Execute runs fn through key's breaker.
func (s *Set[T]) Execute(key string, fn func() (T, error)) (T, error) {
	v, err := s.get(key).Execute(fn)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return v, errors.Join(ErrOpen, err)
	}
	return v, err
}

// State is key's breaker state (closed for a key never used).
func (s *Set[T]) State(key string) gobreaker.State {
	s.mu.Lock()
	cb, ok := s.byKey[key]
	s.mu.Unlock()
	if !ok {
		return gobreaker.StateClosed
	}
	return cb.State()
}

// Allows reports whether a call through key's breaker would be attempted.
func (s *Set[T]) Allows(key string) bool { return s.State(key) != gobreaker.StateOpen }

// StateValue maps a state to the metric value: 0 closed, 1 half-open, 2 open.
func StateValue(st gobreaker.State) float64 {
	switch st {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Retain drops the breakers whose key keep refuses (integrations that were
// deleted), so that the set does not grow with every integration ever seen.
func (s *Set[T]) Retain(keep func(key string) bool) (dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.byKey {
		if !keep(key) {
			delete(s.byKey, key)
			dropped++
		}
	}
	return dropped
}

// Len is how many breakers the set holds.
func (s *Set[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
