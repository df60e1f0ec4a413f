package crm

import "time"

// SetClock sets the clock Retry-After holds are measured on.
func (c *Clients) SetClock(now func() time.Time) { c.now = now }
