package store

// ApplyHooks are signals from inside ApplyEvents' transaction, so that a
// test can interleave two transactions step by step. Production stores
// have none.
type ApplyHooks struct {
	// Resolved runs once the events were resolved to calls, before any
	// lock is taken.
	Resolved func()
	// Parked runs after events that found no call were parked, before the
	// transaction commits.
	Parked func(n int)
}

func (h *ApplyHooks) resolved() {
	if h != nil && h.Resolved != nil {
		h.Resolved()
	}
}

func (h *ApplyHooks) parked(n int) {
	if h != nil && h.Parked != nil && n > 0 {
		h.Parked(n)
	}
}
