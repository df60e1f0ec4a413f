package queue

// Stopping is closed once Stop has begun: tests use it to let a batch in
// hand finish only after the consumer is stopping.
func (c *Consumer[T]) Stopping() <-chan struct{} { return c.stopped }
