package connector_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// cannedTransport answers every request with the same 200 in memory, so a
// benchmark measures only the client side.
type cannedTransport struct{ body []byte }

func (t cannedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(t.body)),
	}, nil
}

// BenchmarkDomainsOverhead is BenchmarkDomains without the network and the
// server: the allocations and time of the client side alone, per API.
func BenchmarkDomainsOverhead(b *testing.B) {
	const id = "da637472900382838869_1364969609"
	for _, api := range apis {
		b.Run(string(api), func(b *testing.B) {
			body := []byte(successBody(api, id, "www.example.com", "cdn.example.net"))
			hc := &http.Client{Transport: cannedTransport{body}}
			ctx := context.Background()
			base := map[connector.API]string{connector.Graph: "https://graph.microsoft.com", connector.MDE: "https://api.securitycenter.microsoft.com"}[api]
			bare := bareLookup(ctx, hc, api, base, "Bearer token")
			// The domains escape to the caller in both variants, as they do in use.
			var sink []string
			b.Run("bare-http-client", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					domains, err := bare(id)
					if err != nil {
						b.Fatal(err)
					}
					sink = domains
				}
			})
			b.Run("connector", func(b *testing.B) {
				c, err := connector.New(api, base, staticCredential{"token"}, emulator.ScopeOf(api), connector.WithHTTPClient(hc))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					res, err := c.Domains(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					sink = res.Domains
				}
			})
			_ = sink
		})
	}
}
