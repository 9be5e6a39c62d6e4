package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// BenchmarkDomains compares, per API, the connector with a bare
// http.Client making the same authenticated GET and decoding the same
// JSON, both against the emulator over loopback TLS with one shared
// keep-alive client: BenchmarkDomains/graph/... and /mde/... side by side.
func BenchmarkDomains(b *testing.B) {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("da6374729003828%05d_%d", i, 1364969609+i)
	}
	for _, api := range apis {
		b.Run(string(api), func(b *testing.B) {
			srv := newServer(b, emulator.Config{AnyAlert: true})
			cred, err := connector.NewCredential(srv.Credential())
			if err != nil {
				b.Fatal(err)
			}
			ctx := b.Context()
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{emulator.ScopeOf(api)}})
			if err != nil {
				b.Fatal(err)
			}
			bare := bareLookup(ctx, srv.Client(), api, srv.URL, "Bearer "+tok.Token)
			c := newClientWith(b, srv, api, cred, emulator.ScopeOf(api))
			conn := func(id string) ([]string, error) {
				res, err := c.Domains(ctx, id)
				if err == nil && res.Attempts != 1 {
					err = fmt.Errorf("%d attempts", res.Attempts)
				}
				return res.Domains, err
			}
			for _, bm := range []struct {
				name string
				get  func(string) ([]string, error)
			}{{"bare-http-client", bare}, {"connector", conn}} {
				b.Run(bm.name, func(b *testing.B) {
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						if _, err := bm.get(ids[i%len(ids)]); err != nil {
							b.Fatal(err)
						}
						i++
					}
				})
				b.Run(bm.name+"-parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							if _, err := bm.get(ids[i%len(ids)]); err != nil {
								b.Error(err)
								return
							}
							i++
						}
					})
				})
			}
		})
	}
}

// bareLookup is the lookup of api a plain client makes: one GET, the
// whole body read, the hosts decoded (Graph's: the hosts of the evidence's
// URLs), without limits, retries or checks.
func bareLookup(ctx context.Context, hc *http.Client, api connector.API, base, authorization string) func(id string) ([]string, error) {
	return func(id string) ([]string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+callPath(api, id), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", authorization)
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		if api == connector.MDE {
			var page struct {
				Value []struct {
					Host string `json:"host"`
				} `json:"value"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return nil, err
			}
			domains := make([]string, 0, len(page.Value))
			for _, v := range page.Value {
				domains = append(domains, v.Host)
			}
			return domains, nil
		}
		var alert struct {
			Evidence []struct {
				URL  string   `json:"url"`
				URLs []string `json:"urls"`
			} `json:"evidence"`
		}
		if err := json.Unmarshal(body, &alert); err != nil {
			return nil, err
		}
		var domains []string
		add := func(raw string) {
			if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
				domains = append(domains, strings.ToLower(u.Hostname()))
			}
		}
		for _, e := range alert.Evidence {
			add(e.URL)
			for _, u := range e.URLs {
				add(u)
			}
		}
		return domains, nil
	}
}
