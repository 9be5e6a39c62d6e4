package connector_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// docsAlertID is the ID of the alert in Microsoft's example of
// GET /v1.0/security/alerts_v2/{id}.
const docsAlertID = "da637578995287051192_756343937"

// graphOutcome is what a Graph answer comes to: domains, or the kind of
// failure.
type graphOutcome struct {
	domains []string
	kind    message.Kind
}

// graphLookup asks a Graph client at srv for docsAlertID, answered with
// body, and returns what it came to.
func graphLookup(t *testing.T, srv *pathServer, c *connector.Client, body string) (connector.Result, graphOutcome) {
	t.Helper()
	srv.script(scripted{body: body})
	res, err := c.Domains(t.Context(), docsAlertID)
	if res.Attempts != 1 {
		t.Errorf("Attempts = %d, want 1", res.Attempts)
	}
	if err != nil {
		return res, graphOutcome{kind: asError(t, err).Kind}
	}
	if res.Domains == nil {
		t.Error("nil domains on success")
	}
	return res, graphOutcome{domains: res.Domains}
}

// TestGraphGolden reads the Graph answers in testdata/graph/*.json, each
// served as the answer to the docs' alert ID, and compares the domains
// with the hand-written *.golden beside it: a JSON list of domains, or
// {"kind": "..."} for a failure.
func TestGraphGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "graph", "*.json"))
	if err != nil || len(files) < 2 {
		t.Fatalf("golden inputs %v, %v", files, err)
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			golden, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			var want graphOutcome
			var failure struct {
				Kind message.Kind `json:"kind"`
			}
			if bytes.HasPrefix(bytes.TrimSpace(golden), []byte("{")) {
				if err := json.Unmarshal(golden, &failure); err != nil || failure.Kind == "" {
					t.Fatalf("golden %s: %v", golden, err)
				}
				want.kind = failure.Kind
			} else if err := json.Unmarshal(golden, &want.domains); err != nil {
				t.Fatalf("golden %s: %v", golden, err)
			}
			res, got := graphLookup(t, srv, c, string(body))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if res.GraphAlertID != "" {
				t.Errorf("GraphAlertID = %q for an alert asked by its own ID", res.GraphAlertID)
			}
		})
	}
}

// TestGraphEvidenceTypes: of every evidence type of Graph v1.0 (and
// dnsEvidence from beta), only urlEvidence.url,
// analyzedMessageEvidence.urls and dnsEvidence.domainName give domains.
// The other types carry names that look like domains (a device's DNS
// name, a mailbox address, an app's instance) in their documented members:
// none of them is one.
func TestGraphEvidenceTypes(t *testing.T) {
	tests := []struct {
		typ     string
		members map[string]any
		want    []string
	}{
		{"urlEvidence", map[string]any{"url": "https://www.contoso-phish.example/login"}, []string{"www.contoso-phish.example"}},
		{"analyzedMessageEvidence", map[string]any{
			"networkMessageId": "2a1c0f4e-0000-4000-8000-0000000000aa", "internetMessageId": "<AB12CD@mail.sender.example>",
			"subject": "Verify at https://subject.example/", "senderIp": "198.51.100.20", "recipientEmailAddress": "jdoe@contoso.com",
			"urls":     []any{"https://cdn.evil.example/a.js", "http://mail.evil.example/click"},
			"p1Sender": map[string]any{"displayName": "IT", "domainName": "sender.example", "emailAddress": "it@sender.example"},
			"p2Sender": map[string]any{"displayName": "IT", "domainName": "sender.example", "emailAddress": "it@sender.example"},
		}, []string{"cdn.evil.example", "mail.evil.example"}},
		{"dnsEvidence", map[string]any{
			"domainName":  "beacon.c2.example",
			"ipAddresses": []any{map[string]any{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.5"}},
			"dnsServerIp": map[string]any{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.53"},
		}, []string{"beacon.c2.example"}},
		{"cloudApplicationEvidence", map[string]any{"appId": 20893, "displayName": "Microsoft SharePoint Online", "instanceId": 0, "instanceName": "contoso.sharepoint.com", "saasAppId": 20892}, nil},
		{"deviceEvidence", map[string]any{"mdeDeviceId": "73e7e2de709dff64ef64b1d0c30e67fab63279db", "deviceDnsName": "ws-0042.corp.contoso.com", "ipInterfaces": []string{"10.1.2.3"}}, nil},
		{"fileEvidence", map[string]any{"detectionStatus": "detected", "fileDetails": map[string]any{"fileName": "www.example.com.exe", "filePath": "C:\\temp"}}, nil},
		{"ipEvidence", map[string]any{"ipAddress": "203.0.113.9", "countryLetterCode": "NL"}, nil},
		{"mailboxEvidence", map[string]any{"displayName": "J. Doe", "primaryAddress": "jdoe@contoso.com", "upn": "jdoe@contoso.com",
			"userAccount": map[string]any{"accountName": "jdoe", "domainName": "contoso.com"}}, nil},
		{"mailClusterEvidence", map[string]any{"clusterBy": "Url", "clusterByValue": "https://cluster.example/", "query": "(Url:\"https://cluster.example/\")", "urn": "urn:MailClusterEntity:0", "emailCount": 3, "networkMessageIds": []string{"x"}}, nil},
		{"oauthApplicationEvidence", map[string]any{"appId": "0a3e5f7d-0000-4000-8000-000000000002", "displayName": "mail-sync.example", "objectId": "9b1d2c3e-0000-4000-8000-000000000003", "publisher": "publisher.example"}, nil},
		{"processEvidence", map[string]any{"processId": 4780, "processCommandLine": "curl.exe https://command-line.example/x",
			"userAccount": map[string]any{"accountName": "SYSTEM", "domainName": "NT AUTHORITY"}}, nil},
		{"registryKeyEvidence", map[string]any{"registryKey": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "registryHive": "HKEY_LOCAL_MACHINE"}, nil},
		{"registryValueEvidence", map[string]any{"registryKey": "SOFTWARE\\Run", "registryHive": "HKEY_LOCAL_MACHINE", "registryValue": "mshta https://registry.example/x.hta", "registryValueName": "Updater", "registryValueType": "String"}, nil},
		{"securityGroupEvidence", map[string]any{"activeDirectoryObjectGuid": "4b8c9d0e-0000-4000-8000-000000000004", "displayName": "Domain Admins",
			"distinguishedName": "CN=Domain Admins,DC=corp,DC=contoso,DC=com", "friendlyName": "corp.contoso.com", "securityGroupId": "S-1-5-21-1-2-3-512", "sid": "S-1-5-21-1-2-3-512"}, nil},
		{"userEvidence", map[string]any{"userAccount": map[string]any{"accountName": "jdoe", "domainName": "contoso.com", "userPrincipalName": "jdoe@contoso.com"}}, nil},
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			body, err := json.Marshal(graphAlert(docsAlertID, evidence(tt.typ, tt.members)))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				want = []string{}
			}
			if _, got := graphLookup(t, srv, c, string(body)); !reflect.DeepEqual(got, graphOutcome{domains: want}) {
				t.Errorf("got %+v, want domains %q", got, want)
			}
		})
	}
}

// TestGraphURLForms: a URL's host is its domain, lower case, without port,
// user info or trailing dot, an internationalised name in punycode; an IP
// address, a value with no host and a malformed URL give none.
func TestGraphURLForms(t *testing.T) {
	tests := []struct {
		url  string
		want string // "" for no domain
	}{
		{"https://www.example.com/", "www.example.com"},
		{"https://www.example.com", "www.example.com"},
		{"HTTPS://WWW.EXAMPLE.COM/PATH?Q=A", "www.example.com"},
		{"http://www.example.com:8080/download?file=update.exe", "www.example.com"},
		{"https://user:pass@www.example.com/", "www.example.com"},
		{"https://user@www.example.com/", "www.example.com"},
		{"https://a@b@www.example.com/", "www.example.com"},
		{"https://www.example.com./", "www.example.com"},
		{"http://svc@WWW.Example.COM.:8443/x#frag", "www.example.com"},
		{"ftp://files.example.com/pub", "files.example.com"},
		{"//www.example.com/x", "www.example.com"},
		{"  https://padded.example.com/  ", "padded.example.com"},
		{"https://under_score.example.com/", "under_score.example.com"},
		{"http://bücher.example/", "xn--bcher-kva.example"},
		{"http://BÜCHER.example/", "xn--bcher-kva.example"},
		{"http://xn--bcher-kva.example/", "xn--bcher-kva.example"},
		{"http://例え.テスト/", "xn--r8jz45g.xn--zckzah"},
		{"http://192.0.2.1/", ""},
		{"http://192.0.2.1:8080/x", ""},
		{"http://user:pass@192.0.2.1/", ""},
		{"http://[2001:db8::1]/", ""},
		{"http://[2001:db8::1]:443/", ""},
		{"http://[::ffff:192.0.2.1]/", ""},
		{"http://[fe80::1%25en0]/", ""},
		{"http://127.1/", ""},
		{"http://2130706433/", ""},
		{"http://１９２.０.２.１/", ""},
		{"www.example.com", ""},
		{"www.example.com/path", ""},
		{"/relative/path", ""},
		{"", ""},
		{"mailto:jdoe@example.com", ""},
		{"javascript:alert(1)", ""},
		{"http://", ""},
		{"http://exa mple.com/", ""},
		{"http://[::1", ""},
		{"http://www.example.com:port/", ""},
		{"http://%zz.example.com/", ""},
		{"http://example.com\\@evil.example/", ""},
		{"http://*.example.com/", ""},
		{"http://-leading.example.com/", ""},
		{"http://a..b.example.com/", ""},
		{"http://" + strings.Repeat("a", 64) + ".example.com/", ""},
		{"http://" + strings.Repeat("abcdefghi.", 26) + "com/", ""},
		{"http://xn--/", ""},
		{"http://exa\x00mple.com/", ""},
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.url), func(t *testing.T) {
			body, err := json.Marshal(graphAlert(docsAlertID, urlEvidence(tt.url), evidence("analyzedMessageEvidence", map[string]any{"urls": []string{tt.url}})))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			if tt.want != "" {
				want = []string{tt.want}
			}
			_, got := graphLookup(t, srv, c, string(body))
			if !reflect.DeepEqual(got, graphOutcome{domains: want}) {
				t.Errorf("got %+v, want domains %q", got, want)
			}
			for _, d := range got.domains {
				if !connector.IsDomain(d) {
					t.Errorf("IsDomain(%q) = false", d)
				}
			}
		})
	}
}

// TestGraphDomainName: dnsEvidence.domainName is a name, not a URL: the
// same rules hold for it.
func TestGraphDomainName(t *testing.T) {
	tests := []struct{ name, want string }{
		{"beacon.c2.example", "beacon.c2.example"},
		{"Beacon.C2.Example.", "beacon.c2.example"},
		{" beacon.c2.example ", "beacon.c2.example"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"203.0.113.5", ""},
		{"2001:db8::1", ""},
		{"[2001:db8::1]", ""},
		{"https://beacon.c2.example/", ""},
		{"beacon.c2.example:53", ""},
		{"user@beacon.c2.example", ""},
		{"", ""},
		{".", ""},
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			body, err := json.Marshal(graphAlert(docsAlertID, evidence("dnsEvidence", map[string]any{"domainName": tt.name})))
			if err != nil {
				t.Fatal(err)
			}
			want := []string{}
			if tt.want != "" {
				want = []string{tt.want}
			}
			if _, got := graphLookup(t, srv, c, string(body)); !reflect.DeepEqual(got, graphOutcome{domains: want}) {
				t.Errorf("got %+v, want domains %q", got, want)
			}
		})
	}
}

// TestGraphAnswerShapes: order, duplicates, nulls, unknown types and wrong
// JSON types in Graph's alert object.
func TestGraphAnswerShapes(t *testing.T) {
	const (
		url = `"@odata.type":"#microsoft.graph.security.urlEvidence"`
		msg = `"@odata.type":"#microsoft.graph.security.analyzedMessageEvidence"`
		dns = `"@odata.type":"#microsoft.graph.security.dnsEvidence"`
	)
	alert := func(evidence string) string {
		return `{"@odata.type":"#microsoft.graph.security.alert","id":"` + docsAlertID + `","status":"new","evidence":` + evidence + `}`
	}
	bad := graphOutcome{kind: message.KindBadResponse}
	none := graphOutcome{domains: []string{}}
	domains := func(d ...string) graphOutcome { return graphOutcome{domains: d} }
	tests := []struct {
		name string
		body string
		want graphOutcome
	}{
		{"evidence order kept", alert(`[{` + url + `,"url":"https://c.example/"},{` + dns + `,"domainName":"a.example"},{` + msg + `,"urls":["https://b.example/","https://d.example/"]}]`),
			domains("c.example", "a.example", "b.example", "d.example")},
		{"duplicates dropped across types and forms", alert(`[{` + url + `,"url":"https://a.example/"},{` + msg + `,"urls":["http://A.EXAMPLE:80/x","https://b.example/"]},{` + dns + `,"domainName":"a.example."},{` + url + `,"url":"https://b.example/"}]`),
			domains("a.example", "b.example")},
		{"no evidence member", `{"id":"` + docsAlertID + `"}`, none},
		{"evidence empty", alert(`[]`), none},
		{"evidence null", alert(`null`), none},
		{"url null", alert(`[{` + url + `,"url":null},{` + url + `,"url":"https://a.example/"}]`), domains("a.example")},
		{"url absent", alert(`[{` + url + `}]`), none},
		{"urls null", alert(`[{` + msg + `,"urls":null}]`), none},
		{"urls empty", alert(`[{` + msg + `,"urls":[]}]`), none},
		{"urls with null", alert(`[{` + msg + `,"urls":[null,"https://a.example/",null]}]`), domains("a.example")},
		{"domainName null", alert(`[{` + dns + `,"domainName":null}]`), none},
		{"unknown type with anything", alert(`[{"@odata.type":"#microsoft.graph.security.kubernetesPodEvidence","url":5,"urls":{"a":1},"domainName":[true]},{` + url + `,"url":"https://a.example/"}]`), domains("a.example")},
		{"unknown type with a url", alert(`[{"@odata.type":"#microsoft.graph.security.futureEvidence","url":"https://future.example/"}]`), none},
		{"type without its namespace", alert(`[{"@odata.type":"urlEvidence","url":"https://a.example/"}]`), none},
		{"a member named url with an underscore", alert(`[{` + url + `,"u_rl":"https://a.example/"},{` + url + `,"URL":"https://b.example/"}]`), domains("b.example")},
		{"no type", alert(`[{"url":"https://a.example/"}]`), none},
		{"type null", alert(`[{"@odata.type":null,"url":"https://a.example/"}]`), none},
		{"type a number", alert(`[{"@odata.type":7,"url":"https://a.example/"}]`), none},
		{"elements that are not objects", alert(`[5,"https://x.example/",null,true,[{` + url + `,"url":"https://x.example/"}],{` + url + `,"url":"https://a.example/"}]`), domains("a.example")},
		{"extra members everywhere", `{"id":"` + docsAlertID + `","x":{"y":[1,{"z":null}]},"evidence":[{` + url + `,"url":"https://a.example/","extra":{"url":"https://no.example/"}}]}`, domains("a.example")},
		{"url a number", alert(`[{` + url + `,"url":5}]`), bad},
		{"url a list", alert(`[{` + url + `,"url":["https://a.example/"]}]`), bad},
		{"url a boolean", alert(`[{` + url + `,"url":false}]`), bad},
		{"urls a string", alert(`[{` + msg + `,"urls":"https://a.example/"}]`), bad},
		{"urls an object", alert(`[{` + msg + `,"urls":{"0":"https://a.example/"}}]`), bad},
		{"urls with a number", alert(`[{` + msg + `,"urls":["https://a.example/",5]}]`), bad},
		{"urls with a list", alert(`[{` + msg + `,"urls":[["https://a.example/"]]}]`), bad},
		{"domainName a number", alert(`[{` + dns + `,"domainName":5}]`), bad},
		{"evidence a string", alert(`"x"`), bad},
		{"evidence an object", alert(`{"url":"https://a.example/"}`), bad},
		{"evidence a number", alert(`5`), bad},
		{"not json", `<html><body>hello</body></html>`, bad},
		{"empty body", ``, bad},
		{"null", `null`, bad},
		{"a list", `[` + alert(`[]`) + `]`, bad},
		{"a string", `"` + docsAlertID + `"`, bad},
		{"no id", `{"@odata.type":"#microsoft.graph.security.alert","evidence":[{` + url + `,"url":"https://a.example/"}]}`, bad},
		{"id null", `{"id":null,"evidence":[]}`, bad},
		{"id empty", `{"id":"","evidence":[]}`, bad},
		{"id a number", `{"id":637578995287051192,"evidence":[]}`, bad},
		{"truncated", alert(`[{` + url + `,"url":"https://a.example/"}`), bad},
		{"two objects", alert(`[]`) + alert(`[]`), bad},
		{"invalid utf-8", "{\"id\":\"" + docsAlertID + "\",\"title\":\"caf\xe9\",\"evidence\":[]}", bad},
		{"an endpoint api list", `{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"a.example"}]}`, bad},
		{"a graph error with 200", errorBody(connector.Graph, "NotFound"), bad},
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := graphLookup(t, srv, c, tt.body); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestGraphURLWithCredentials: a URL's password is never in a result nor
// in an error.
func TestGraphURLWithCredentials(t *testing.T) {
	const password = "Pa55w0rd-in-a-url-7f3a"
	withCreds := urlEvidence("https://svc-account:" + password + "@files.example.com:8443/share?x=" + password)
	tests := []struct {
		name string
		body any
		fail bool
	}{
		{name: "success", body: graphAlert(docsAlertID, withCreds)},
		{name: "in a list of urls", body: graphAlert(docsAlertID, evidence("analyzedMessageEvidence", map[string]any{"urls": []string{"http://u:" + password + "@files.example.com/"}}))},
		{name: "failure after it", body: graphAlert(docsAlertID, withCreds, urlEvidence(5)), fail: true},
		{name: "failure in its list", body: graphAlert(docsAlertID, evidence("analyzedMessageEvidence", map[string]any{"urls": []any{"http://u:" + password + "@files.example.com/", 5}})), fail: true},
		{name: "malformed with it", body: graphAlert(docsAlertID, urlEvidence("https://svc:"+password+"@files example.com/"))},
	}
	srv := newPathServer(t, scripted{})
	c := srv.client(t, connector.Graph)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			srv.script(scripted{body: string(body)})
			res, err := c.Domains(t.Context(), docsAlertID)
			if (err != nil) != tt.fail {
				t.Fatalf("Domains = %+v, %v; want failure %v", res, err, tt.fail)
			}
			texts := []string{fmt.Sprintf("%+v", res), fmt.Sprintf("%#v", res)}
			if err != nil {
				e := asError(t, err)
				info, _ := json.Marshal(e.ErrorInfo())
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", e), string(info))
			} else if want := []string{"files.example.com"}; !strings.HasPrefix(tt.name, "malformed") && !reflect.DeepEqual(res.Domains, want) {
				t.Errorf("Domains = %q, want %q", res.Domains, want)
			}
			if contains(texts, password) || contains(texts, "svc-account") {
				t.Errorf("the password or the user shows: %q", texts)
			}
		})
	}
}

// TestGraphManyEvidence: an alert with 10,000 evidence items is read
// whole, in order and without duplicates, within bounded time and memory.
func TestGraphManyEvidence(t *testing.T) {
	const n = 10_000
	items := make([]any, 0, n)
	want := make([]string, 0, n/2)
	for i := range n {
		// Half of them repeat an earlier host.
		h := fmt.Sprintf("h%05d.example.com", i/2*2)
		if i%2 == 0 {
			want = append(want, h)
		}
		if i%3 == 0 {
			items = append(items, evidence("analyzedMessageEvidence", map[string]any{"urls": []string{"https://" + h + "/"}}))
		} else {
			items = append(items, urlEvidence("https://"+strings.ToUpper(h)+"/"))
		}
	}
	body, err := json.Marshal(graphAlert(docsAlertID, items...))
	if err != nil {
		t.Fatal(err)
	}
	srv := newPathServer(t, scripted{body: string(body)})
	c := srv.client(t, connector.Graph)
	allocs := allocatedBytes()
	start := time.Now()
	res, err := c.Domains(t.Context(), docsAlertID)
	took := time.Since(start)
	allocated := allocatedBytes() - allocs
	if err != nil || !reflect.DeepEqual(res.Domains, want) {
		t.Fatalf("Domains = %d domains, %v; want %d in order", len(res.Domains), err, len(want))
	}
	t.Logf("%d evidence items (%.1f MiB) read in %s, %.1f MiB allocated", n, float64(len(body))/(1<<20), took, float64(allocated)/(1<<20))
	if took > 10*time.Second {
		t.Errorf("reading %d evidence items took %s", n, took)
	}
	// The body, a copy of its evidence and the domains: a few times the
	// body, never quadratic in the items.
	if limit := uint64(16 * len(body)); allocated > limit {
		t.Errorf("allocated %.1f MiB for a %.1f MiB answer, want at most %.1f MiB",
			float64(allocated)/(1<<20), float64(len(body))/(1<<20), float64(limit)/(1<<20))
	}
}

// allocatedBytes is the total of heap allocations so far.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestGraphHugeAnswer: an alert object of 50 MiB (a real alert with very
// many evidence items), with or without a Content-Length, fails as
// bad_response for four lookups at once, and the heap stays within the
// body budget, as it does for the endpoint API (TestOversizedAnswersMemory).
func TestGraphHugeAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("moves up to 200 MiB over loopback")
	}
	const (
		lookups = 4
		size    = 50 << 20
		budget  = 8 << 20
		bound   = 24 << 20
	)
	item, err := json.Marshal(urlEvidence("https://www.example.com/"))
	if err != nil {
		t.Fatal(err)
	}
	head := []byte(`{"@odata.type":"#microsoft.graph.security.alert","id":"` + docsAlertID + `","evidence":[`)
	items := (size - len(head)) / (len(item) + 1)
	length := len(head) + items*(len(item)+1) - 1 + 2
	for _, withLength := range []bool{true, false} {
		t.Run(fmt.Sprintf("length=%v", withLength), func(t *testing.T) {
			ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if withLength {
					w.Header().Set("Content-Length", strconv.Itoa(length))
				}
				_, _ = w.Write(head)
				for i := range items {
					if i > 0 {
						_, _ = w.Write([]byte(","))
					}
					if _, err := w.Write(item); err != nil {
						return
					}
				}
				_, _ = w.Write([]byte("]}"))
			}))
			t.Cleanup(ts.Close)
			c, err := connector.New(connector.Graph, ts.URL, staticCredential{"t"}, "https://graph.microsoft.com/.default",
				connector.WithHTTPClient(ts.Client()), connector.WithBodyBudget(budget),
				connector.WithBackoff(time.Millisecond, time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			checkOversized(t, lookups, bound, func() error {
				_, err := c.Domains(t.Context(), docsAlertID)
				return err
			})
		})
	}
}
