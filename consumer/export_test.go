package consumer

// Parked is the number of messages waiting for their quota without a worker.
func (c *Consumer) Parked() int {
	if p := c.pool.Load(); p != nil {
		return int(p.parked.Load())
	}
	return 0
}
