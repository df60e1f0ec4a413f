package store

import (
	"time"
)

// WithApplyHooks returns a copy of s whose ApplyEvents runs hooks.
func WithApplyHooks(s *Store, hooks *ApplyHooks) *Store {
	c := *s
	c.hooks = hooks
	return &c
}

// SetClock makes s read the time of config changes from now.
func (s *Store) SetClock(now func() time.Time) { s.now = now }
