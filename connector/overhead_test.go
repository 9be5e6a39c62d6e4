package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
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
// server: the allocations and time of the client side alone.
func BenchmarkDomainsOverhead(b *testing.B) {
	body := []byte(`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"cdn.example.net"}]}`)
	hc := &http.Client{Transport: cannedTransport{body}}
	ctx := context.Background()
	const base, id = "https://api.securitycenter.microsoft.com", "da637472900382838869_1364969609"
	authorization := "Bearer token"

	bare := func(id string) ([]string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/alerts/"+id+"/domains", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", authorization)
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		var page struct {
			Value []struct {
				Host string `json:"host"`
			} `json:"value"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return nil, err
		}
		domains := make([]string, 0, len(page.Value))
		for _, v := range page.Value {
			domains = append(domains, v.Host)
		}
		return domains, nil
	}
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
		c, err := connector.New(base, staticCredential{"token"}, emulator.Scope, connector.WithHTTPClient(hc))
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
}
