package connector_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
)

// TestHexIPv4IsNotADomain: a URL host that the WHATWG URL parser
// (browsers, curl) reads as an IPv4 address in hex form is an address,
// not a domain.
func TestHexIPv4IsNotADomain(t *testing.T) {
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, u := range []string{"http://0x7f000001/", "http://0x7f.1/", "http://192.0x.2.1/", "http://0xc0.0xa8.0x0.0x1/", "http://０ｘ７ｆ.１/"} {
		body := successBody(connector.Graph, docsAlertID)
		body = string(bytes.Replace([]byte(body), []byte(`"evidence":[]`), []byte(`"evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"`+u+`"}]`), 1))
		if _, got := graphLookup(t, srv, c, body); len(got.domains) != 0 || got.kind != "" {
			t.Errorf("%s: got %+v, want no domain", u, got)
		}
	}
	for _, d := range []string{"0x7f000001", "0x7f.1", "192.0x.2.1"} {
		if connector.IsDomain(d) {
			t.Errorf("IsDomain(%q) = true", d)
		}
	}
}

// TestGraphAlertIDIsTheSecondForm: graphAlertId is an alert ID (the
// second form asked), never whatever an answer puts in its id.
func TestGraphAlertIDIsTheSecondForm(t *testing.T) {
	for _, id := range []string{"x y\n", "<script>", string(bytes.Repeat([]byte("a"), 100_000))} {
		srv := newPathServer(t, scripted{body: `{"id":"` + id + `","evidence":[]}`})
		res, err := srv.client(t, connector.Graph).Domains(t.Context(), alertID)
		if err == nil && res.GraphAlertID != "" {
			t.Errorf("GraphAlertID = %.40q for an alert asked by its Graph ID", res.GraphAlertID)
		}
	}
}

// TestEvidenceListMemory: 4 lookups at once, each answered with a
// 4 MiB alert object whose evidence is a list of empty objects (or of
// numbers), end within the same heap bound as any other answer of the
// 4 MiB cap (TestOversizedAnswersMemory): the parse of an answer must not
// take hundreds of times its size.
func TestEvidenceListMemory(t *testing.T) {
	const lookups, bound = 4, 64 << 20
	for _, el := range []string{"{}", "0"} {
		t.Run(el, func(t *testing.T) {
			var b bytes.Buffer
			b.WriteString(`{"id":"` + alertID + `","evidence":[`)
			for b.Len() < connector.DefaultMaxBodyBytes-16 {
				b.WriteString(el + ",")
			}
			b.WriteString(el + "]}")
			srv := newPathServer(t, scripted{status: http.StatusOK, body: b.String()})
			c := srv.client(t, connector.Graph)
			peakBefore := heapBytes()
			peak := watchHeap(t)
			errs := make(chan error, lookups)
			for range lookups {
				go func() {
					_, err := c.Domains(t.Context(), alertID)
					errs <- err
				}()
			}
			for range lookups {
				// Either answer is fine: no domains, or bad_response for
				// more evidence items than the service reads.
				if err := <-errs; err != nil && !errors.Is(err, connector.ErrBadResponse) {
					t.Errorf("Domains = %v, want success or bad_response", err)
				}
			}
			grew := int64(peak()) - int64(peakBefore)
			t.Logf("heap grew by %.1f MiB at its peak", float64(grew)/(1<<20))
			if grew > bound {
				t.Errorf("heap grew by %.1f MiB for %d answers of 4 MiB, want at most %d MiB", float64(grew)/(1<<20), lookups, bound>>20)
			}
		})
	}
}
