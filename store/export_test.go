package store

// WithApplyHooks returns a copy of s whose ApplyEvents runs hooks.
func WithApplyHooks(s *Store, hooks *ApplyHooks) *Store {
	c := *s
	c.hooks = hooks
	return &c
}
