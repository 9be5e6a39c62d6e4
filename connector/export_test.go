package connector

// What only tests use: production always runs on the defaults and https.

// URLTemplate is the API's call without the alert ID, for span names.
func (a API) URLTemplate() string { return a.wire().template() }

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
