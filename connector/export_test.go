package connector

// Options only tests set: the defaults hold in production.

// WithMaxBodyBytes caps the bytes of one lookup's answers; more is bad_response.
func WithMaxBodyBytes(n int64) Option {
	return positive("max body bytes", n, func(c *Client) { c.maxBody = n })
}

// WithBodyBudget bounds the answer bytes beyond 64 KiB each held at once.
func WithBodyBudget(n int64) Option {
	return positive("body budget", n, func(c *Client) { c.bodyBudget = n })
}

// WithInsecureHTTP accepts an http:// base URL, for benchmarks on loopback.
func WithInsecureHTTP() Option {
	return func(c *Client) error { c.insecureHTTP = true; return nil }
}
