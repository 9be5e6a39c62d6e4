package connector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// BenchmarkDomains compares the connector with a bare http.Client making
// the same authenticated GET and decoding the same JSON, both against the
// emulator over loopback TLS with one shared keep-alive client.
func BenchmarkDomains(b *testing.B) {
	srv := newServer(b, emulator.WithAnyAlert())
	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{emulator.Scope}})
	if err != nil {
		b.Fatal(err)
	}
	authorization := "Bearer " + tok.Token
	hc := srv.Client()
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("da6374729003828%05d_%d", i, 1364969609+i)
	}

	bare := func(id string) ([]string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/alerts/"+id+"/domains", nil)
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
	c := newClientWith(b, srv, cred, emulator.Scope)
	conn := func(id string) ([]string, error) {
		res, err := c.Domains(ctx, id)
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
}
