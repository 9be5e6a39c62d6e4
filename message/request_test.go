package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

func TestDecode(t *testing.T) {
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		body      string
		header    nats.Header
		wantID    string
		wantCorr  string
		wantError bool
	}{
		{name: "plain", body: "da637472900382838869_1364969609", wantID: "da637472900382838869_1364969609"},
		{name: "plain with white space", body: "  636688558380765161_2136280442\r\n", wantID: "636688558380765161_2136280442"},
		{name: "negative suffix", body: "da637551227677560813_-961444813", wantID: "da637551227677560813_-961444813"},
		{name: "json alertId", body: `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`, wantID: "da637472900382838869_1364969609", wantCorr: "siem-42"},
		{name: "json alertId without correlation", body: `{"alertId":"abc"}`, wantID: "abc"},
		{name: "defender alert object", body: `{"id":"da637200417169017725_183736971","title":"Suspicious","severity":"High","evidence":[]}`, wantID: "da637200417169017725_183736971"},
		{name: "alertId wins over id", body: `{"id":"other","alertId":"abc"}`, wantID: "abc"},
		{name: "correlation header", body: "abc", header: hdr("Correlation-Id", "from-header"), wantID: "abc", wantCorr: "from-header"},
		{name: "body correlation beats header", body: `{"alertId":"abc","correlationId":"body"}`, header: hdr("Correlation-Id", "hdr"), wantID: "abc", wantCorr: "body"},
		{name: "empty", body: "", wantError: true},
		{name: "white space only", body: " \n\t ", wantError: true},
		{name: "path traversal", body: "../machines", wantError: true},
		{name: "encoded traversal", body: "%2e%2e", wantError: true},
		{name: "query", body: "abc?$top=1", wantError: true},
		{name: "fragment", body: "abc#x", wantError: true},
		{name: "slash", body: "abc/def", wantError: true},
		{name: "space inside", body: "abc def", wantError: true},
		{name: "too long", body: strings.Repeat("a", 129), wantError: true},
		{name: "longest valid", body: strings.Repeat("a", 128), wantID: strings.Repeat("a", 128)},
		{name: "unicode letters", body: "ålert", wantError: true},
		{name: "binary", body: "\x00\x01\xff\xfe", wantError: true},
		{name: "json array", body: `["abc"]`, wantError: true},
		{name: "json string", body: `"abc"`, wantError: true},
		{name: "json number id", body: `{"alertId":123}`, wantError: true},
		{name: "json null id", body: `{"alertId":null}`, wantError: true},
		{name: "json object id", body: `{"id":{"x":1}}`, wantError: true},
		{name: "json bool correlation", body: `{"alertId":"abc","correlationId":true}`, wantError: true},
		{name: "json without id", body: `{"title":"x"}`, wantError: true},
		{name: "json invalid id", body: `{"alertId":"../machines"}`, wantError: true},
		{name: "broken json", body: `{"alertId":"abc"`, wantError: true},
		{name: "huge", body: strings.Repeat("x", MaxRequestBytes+1), wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Decode([]byte(tt.body), tt.header)
			if tt.wantError {
				if err == nil {
					t.Fatalf("Decode(%q) = %+v, want an error", tt.body, req)
				}
				if KindOf(err) != KindInvalidRequest || !errors.Is(err, ErrInvalidRequest) {
					t.Errorf("error %v is not an invalid_request", err)
				}
				if req.AlertID != "" {
					t.Errorf("invalid request kept alert ID %q", req.AlertID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.body, err)
			}
			if req.AlertID != tt.wantID || req.CorrelationID != tt.wantCorr {
				t.Errorf("Decode(%q) = %+v, want id %q correlation %q", tt.body, req, tt.wantID, tt.wantCorr)
			}
		})
	}
}

func TestCorrelationIDCleaned(t *testing.T) {
	req, err := Decode([]byte(`{"alertId":"abc","correlationId":"a\r\nInjected: x"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(req.CorrelationID, "\r\n") {
		t.Errorf("correlation ID keeps control characters: %q", req.CorrelationID)
	}
	long := strings.Repeat("c", 1000)
	req, _ = Decode([]byte(`{"alertId":"abc","correlationId":"`+long+`"}`), nil)
	if len(req.CorrelationID) > maxCorrelationID {
		t.Errorf("correlation ID not bounded: %d bytes", len(req.CorrelationID))
	}
}

func TestRequestText(t *testing.T) {
	text, truncated := requestText([]byte("ok \xff\xfe end"))
	if truncated || !utf8.ValidString(text) || !strings.Contains(text, "\uFFFD") {
		t.Errorf("requestText(invalid UTF-8) = %q, %v", text, truncated)
	}
	big := strings.Repeat("é", 3000) // 6000 bytes, two-byte runes
	text, truncated = requestText([]byte(big))
	if !truncated || len(text) > 4096 || !utf8.ValidString(text) || strings.Contains(text, "\uFFFD") {
		t.Errorf("requestText(6000 bytes) = %d bytes, truncated %v, valid %v", len(text), truncated, utf8.ValidString(text))
	}
	text, truncated = requestText([]byte("short"))
	if truncated || text != "short" {
		t.Errorf("requestText(short) = %q, %v", text, truncated)
	}
}

// pastedSecret stands for a secret a publisher put in a request by mistake.
const pastedSecret = "Xq8Q~s3cr3t.value"

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"da637472900382838869_1364969609",
		`{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42"}`,
		`{"id":"636688558380765161_2136280442"}`,
		"../machines", "%2e%2e", "", `{"alertId":1}`, "\xff", `{"id":"a","alertId":null}`,
		`{"alertId":"` + pastedSecret + `"}`, `{"` + pastedSecret + `":1,"tenant":"` + pastedSecret + `","tenant":2}`,
		`{"id":"a","tenantId":{"` + pastedSecret + `":1}}`, pastedSecret,
	} {
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, corr string) {
		h := nats.Header{}
		h.Set(HeaderCorrelationID, corr)
		req, err := Decode(body, h)
		if err != nil {
			if req.AlertID != "" {
				t.Fatalf("error with alert ID %q", req.AlertID)
			}
			if KindOf(err) != KindInvalidRequest {
				t.Fatalf("error %v is not invalid_request", err)
			}
			if strings.Contains(err.Error(), pastedSecret) {
				t.Fatalf("error %v shows the request's content", err)
			}
		} else if ValidateAlertID(req.AlertID) != nil {
			t.Fatalf("accepted invalid alert ID %q", req.AlertID)
		}
		if strings.ContainsAny(req.CorrelationID, "\r\n\x00") || !utf8.ValidString(req.CorrelationID) {
			t.Fatalf("correlation ID %q unsafe for a header", req.CorrelationID)
		}
		res := Failure(req.AlertID, errors.New("x"), 0, testNow).WithRequest(body)
		if !utf8.ValidString(*res.Request) || len(*res.Request) > 4096 {
			t.Fatalf("request text invalid or unbounded: %d bytes", len(*res.Request))
		}
	})
}

func TestValidTraceparent(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", false}, // upper case
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, // invalid version
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, // zero trace ID
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false}, // zero parent ID
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
		{"", false},
		{strings.Repeat("a", 65400), false},
	} {
		if got := ValidTraceparent(tc.in); got != tc.want {
			t.Errorf("ValidTraceparent(%.60q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// graphAlert is an alert object as a SIEM exports it from Microsoft Graph
// (alerts_v2), about 2 KiB: the request form whose decoding costs most.
const graphAlert = `{"id":"da637551227677560813_-961444813","providerAlertId":"da637551227677560813_-961444813","incidentId":"2972395","status":"new","severity":"high","classification":null,"determination":null,"serviceSource":"microsoftDefenderForEndpoint","detectionSource":"antivirus","detectorId":"e0da400f-affd-43ef-b1d5-afc2eb6f2756","tenantId":"b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c","title":"Suspicious execution of hidden file","description":"A hidden file has been launched. This activity could indicate a compromised host.","recommendedActions":"Collect artifacts and determine scope.","category":"DefenseEvasion","assignedTo":null,"alertWebUrl":"https://security.microsoft.com/alerts/da637551227677560813_-961444813?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c","incidentWebUrl":"https://security.microsoft.com/incidents/2972395?tid=b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c","actorDisplayName":null,"threatDisplayName":null,"threatFamilyName":null,"mitreTechniques":["T1564.001"],"createdDateTime":"2021-04-27T12:19:27.7211305Z","lastUpdateDateTime":"2021-05-02T14:19:01.3266667Z","resolvedDateTime":null,"firstActivityDateTime":"2021-04-26T07:45:50.116Z","lastActivityDateTime":"2021-05-02T07:56:58.222Z","comments":[],"evidence":[{"@odata.type":"#microsoft.graph.security.deviceEvidence","createdDateTime":"2021-04-27T12:19:27.7211305Z","verdict":"unknown","remediationStatus":"none","roles":[],"tags":[],"firstSeenDateTime":"2020-09-12T07:28:32.4321753Z","mdeDeviceId":"73e7e2de709dff64ef64b1d0c30e67fab63279db","azureAdDeviceId":null,"deviceDnsName":"tempdev","osPlatform":"Windows10","osBuild":22424,"version":"Other","healthStatus":"active","riskScore":"medium","rbacGroupId":75,"rbacGroupName":"UnassignedGroup","onboardingStatus":"onboarded","defenderAvStatus":"unknown","loggedOnUsers":[]},{"@odata.type":"#microsoft.graph.security.urlEvidence","createdDateTime":"2021-04-27T12:19:27.7211305Z","verdict":"suspicious","remediationStatus":"none","roles":[],"tags":[],"url":"https://www.contoso.example/path?x=1"},{"@odata.type":"#microsoft.graph.security.ipEvidence","createdDateTime":"2021-04-27T12:19:27.7211305Z","verdict":"unknown","remediationStatus":"none","roles":[],"tags":[],"ipAddress":"203.0.113.7"}]}`

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"plain", "da637472900382838869_1364969609"},
		{"alertId", `{"alertId":"da637472900382838869_1364969609","correlationId":"siem-42","tenant":"contoso"}`},
		{"graph-alert", graphAlert},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(body, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodeExactKeys: a request's members are matched by their exact key
// (encoding/json would take TENANT for tenant), and one the service reads
// given twice is refused, so that no other reader routes it elsewhere.
func TestDecodeExactKeys(t *testing.T) {
	tests := []struct {
		body         string
		id, tenant   string
		entra, wrong string // wrong: the error names it
	}{
		{body: `{"alertId":"a1","tenant":"alpha","TENANT":"bravo"}`, id: "a1", tenant: "alpha"},
		{body: `{"TENANT":"bravo","alertId":"a1","tenant":"alpha"}`, id: "a1", tenant: "alpha"},
		{body: `{"AlertId":"a1","id":"a2"}`, id: "a2"},
		{body: `{"alertid":"a1"}`, wrong: "no alertId or id"},
		{body: `{"id":"a1","TenantId":"x","tenantId":"6f1c2b9e-0000-4000-8000-000000000001"}`, id: "a1", entra: "6f1c2b9e-0000-4000-8000-000000000001"},
		{body: `{"\u0074enant":"alpha","alertId":"a1"}`, id: "a1", tenant: "alpha"},
		{body: `{"tenant":"alpha","alertId":"a1","tenant":"bravo"}`, wrong: "tenant is given twice"},
		{body: `{"alertId":"a1","tenant":"alpha","\u0074enant":"bravo"}`, wrong: "tenant is given twice"},
		{body: `{"id":"a1","tenantId":"x","tenantId":"y"}`, wrong: "tenantId is given twice"},
		{body: `{"id":"a1","tenantId":7}`, wrong: "tenantId is not a string"},
		{body: `{"id":"a1","tenantId":null,"evidence":[{"tenant":"x","id":{"alertId":1}}]}`, id: "a1"},
		{body: `{"id":"a1","tenantId":"` + strings.Repeat("t", 300) + `"}`, id: "a1", entra: strings.Repeat("t", 300)},
		{body: ` { "alertId" : "a1" , "n" : -1.5e3 , "b" : [ true , null , "]}\"" ] } `, id: "a1"},
	}
	for _, tc := range tests {
		req, err := Decode([]byte(tc.body), nil)
		if tc.wrong != "" {
			if err == nil || KindOf(err) != KindInvalidRequest || !strings.Contains(err.Error(), tc.wrong) {
				t.Errorf("Decode(%s) = %+v, %v; want an error with %q", tc.body, req, err, tc.wrong)
			}
			continue
		}
		if err != nil || req.AlertID != tc.id || req.Tenant != tc.tenant || req.EntraTenantID != tc.entra {
			t.Errorf("Decode(%s) = %+v, %v; want id %q tenant %q tenantId %q", tc.body, req, err, tc.id, tc.tenant, tc.entra)
		}
	}
}

// FuzzMembers: on any JSON object, the members Decode reads are those a
// token-by-token reading of encoding/json finds under the same exact keys,
// and a key given twice is reported; never a panic.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{`{"alertId":"a","tenant":"t"}`, `{"a":{"b":[1,"}"]},"id":"x"}`, `{"tenant":1,"tenant":2}`,
		`{"\u0069d":"x","x":"\"\\"}`, `{}`, `{"id":null , "correlationId" : [ ] }`, graphAlert} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimSpace(body)
		if !json.Valid(body) || len(body) == 0 || body[0] != '{' {
			return
		}
		want := map[string][][]byte{}
		dec := json.NewDecoder(bytes.NewReader(body))
		_, _ = dec.Token()
		for dec.More() {
			key, _ := dec.Token()
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			want[key.(string)] = append(want[key.(string)], v)
		}
		var m members
		dup := m.read(body)
		twice := false
		for k, name := range memberKeys {
			vs := want[name]
			twice = twice || len(vs) > 1
			if len(vs) == 1 && dup == "" && !bytes.Equal(m[k], vs[0]) {
				t.Fatalf("%s: %q, want %q", name, m[k], vs[0])
			}
			if len(vs) == 0 && m[k] != nil {
				t.Fatalf("%s: %q, not in the object", name, m[k])
			}
		}
		if twice != (dup != "") {
			t.Fatalf("duplicate %q, want a duplicate: %v", dup, twice)
		}
	})
}
