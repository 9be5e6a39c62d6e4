package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/alert-domains/alert-domains/emulator"
)

// soakRequest is one request of the fault soak's load and the one result
// the contract says it must get.
type soakRequest struct {
	MsgID   string // its Nats-Msg-Id, by which the checker finds it in the stream
	Class   string
	Subject string
	Body    []byte
	Header  nats.Header
	// Tenant is the tenant whose Defender answers it ("" without a tenants
	// file), Scripts what that Defender answers first for Alert.
	Tenant  string
	Alert   string
	Scripts []emulator.Answer
	Want    soakOutcome
}

// soakOutcome is the result a request must get.
type soakOutcome struct {
	Status  string   // success or failure
	Kind    string   // of a failure
	AlertID string   // "" when the request holds no valid ID
	Domains []string // of a success, in Defender's order, without duplicates
	// Tenant is the result's tenant and Subject its subject; either is
	// unchecked when "".
	Tenant, Subject string
	Correlation     string // unchecked when ""
}

// soakTenantNames are the tenants of a run with a tenants file; the first
// answers requests that name none.
var soakTenantNames = []string{"default", "contoso", "fabrikam"}

// soakLoad is the seeded load of one run: the requests in publishing order,
// and the alerts each tenant's Defender knows (hosts by alert ID).
type soakLoad struct {
	Requests []soakRequest
	Alerts   map[string]map[string][]string // tenant -> alert -> hosts
}

// soakClasses are the kinds of request, with their weights in the mix.
var soakClasses = []struct {
	name   string
	weight int
}{
	{"domains", 36}, {"empty", 8}, {"not_found", 10}, {"invalid", 10}, {"repeat", 16},
	{"flaky_503", 10}, {"flaky_429", 4}, {"unknown_tenant", 3}, {"tenant_conflict", 3},
}

// newSoakLoad draws n requests. tenants are the tenant names of the run
// (nil: one tenant from the environment, no tenants file).
func newSoakLoad(rng *rand.Rand, n int, tenants []string) *soakLoad {
	l := &soakLoad{Alerts: map[string]map[string][]string{}}
	keys := soakTenantKeys(tenants)
	for _, k := range keys {
		l.Alerts[k] = map[string][]string{}
	}
	var earlier []int // requests with a valid alert, for repeats
	total := 0
	for _, c := range soakClasses {
		total += c.weight
	}
	for i := range n {
		class, pick := "", rng.Intn(total)
		for _, c := range soakClasses {
			if pick -= c.weight; pick < 0 {
				class = c.name
				break
			}
		}
		if tenants == nil && (class == "unknown_tenant" || class == "tenant_conflict") {
			class = "domains"
		}
		if class == "repeat" && len(earlier) == 0 {
			class = "domains"
		}
		r := soakRequest{MsgID: fmt.Sprintf("soak-%06d", i), Class: class}
		alert := fmt.Sprintf("da63%014d_%d", i, rng.Int31())
		switch class {
		case "domains", "flaky_503", "flaky_429":
			for _, k := range keys {
				l.Alerts[k][alert] = soakHosts(rng, i, k)
			}
		case "empty":
			for _, k := range keys {
				l.Alerts[k][alert] = []string{}
			}
		case "repeat":
			alert = l.Requests[earlier[rng.Intn(len(earlier))]].Alert
		}
		switch class {
		case "invalid", "unknown_tenant", "tenant_conflict":
			r = soakRefused(rng, r, alert, tenants)
		default:
			r = l.soakLookup(rng, r, i, alert, tenants)
			earlier = append(earlier, i)
		}
		l.Requests = append(l.Requests, r)
	}
	return l
}

// soakRefused is a request the service answers without Defender: an
// invalid body, a tenant not configured, or two tenants named.
func soakRefused(rng *rand.Rand, r soakRequest, alert string, tenants []string) soakRequest {
	switch r.Class {
	case "invalid":
		r.Body = []byte(soakInvalidBodies[rng.Intn(len(soakInvalidBodies))])
		r.Subject = requestSubject
		if tenants != nil && rng.Intn(2) == 0 {
			r.Subject += "." + tenants[rng.Intn(len(tenants))]
		}
		r.Want = soakOutcome{Status: "failure", Kind: "invalid_request"}
	case "unknown_tenant":
		r.Alert = alert
		r.Subject, r.Body = soakAddress(rng, alert, "umbrella", "")
		r.Want = soakOutcome{Status: "failure", Kind: "unknown_tenant", AlertID: alert}
	case "tenant_conflict":
		a, b := rng.Intn(len(tenants)), rng.Intn(len(tenants)-1)
		if b >= a {
			b++
		}
		r.Alert = alert
		r.Subject = requestSubject + "." + tenants[a]
		r.Body = fmt.Appendf(nil, `{"alertId":%q,"tenant":%q}`, alert, tenants[b])
		r.Want = soakOutcome{Status: "failure", Kind: "invalid_request"}
	}
	return r
}

// soakLookup is a request for alert that Defender answers: its tenant,
// form and correlation ID drawn, its result what that tenant's Defender
// knows of the alert, and for the flaky classes the 503s or the 429 it
// answers first.
func (l *soakLoad) soakLookup(rng *rand.Rand, r soakRequest, i int, alert string, tenants []string) soakRequest {
	r.Alert = alert
	named := ""
	if tenants != nil {
		r.Tenant = tenants[rng.Intn(len(tenants))]
		if r.Tenant != tenants[0] || rng.Intn(4) != 0 {
			named = r.Tenant
		}
	}
	correlation := fmt.Sprintf("siem-%d", i)
	r.Subject, r.Body = soakAddress(rng, alert, named, correlation)
	if !strings.HasPrefix(string(r.Body), "{") {
		if rng.Intn(2) == 0 {
			r.Header = nats.Header{"Correlation-Id": {correlation}}
		} else {
			correlation = ""
		}
	}
	r.Want = soakOutcome{AlertID: alert, Tenant: r.Tenant, Correlation: correlation}
	if hosts, known := l.Alerts[r.Tenant][alert]; known {
		r.Want.Status, r.Want.Domains, r.Want.Subject = "success", firstOfEach(hosts), successSubject
	} else {
		r.Want.Status, r.Want.Kind, r.Want.Subject = "failure", "not_found", failureSubject
	}
	if named != "" {
		r.Want.Subject += "." + named
	}
	switch r.Class {
	case "flaky_503":
		for range 1 + rng.Intn(3) {
			r.Scripts = append(r.Scripts, emulator.Answer{Status: http.StatusServiceUnavailable,
				Body: `{"error":{"code":"ServiceUnavailable","message":"try again"}}`})
		}
	case "flaky_429":
		r.Scripts = []emulator.Answer{{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}},
			Body: `{"error":{"code":"TooManyRequests","message":"API calls quota exceeded!"}}`}}
	}
	return r
}

// firstOfEach is hosts in order without repeats, as a result lists them.
func firstOfEach(hosts []string) []string {
	out := []string{}
	for _, h := range hosts {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// soakHosts are 1 to 4 hosts of an alert for one tenant, the first now and
// then listed again at the end (a result lists it once).
func soakHosts(rng *rand.Rand, i int, tenant string) []string {
	if tenant == "" {
		tenant = "soak"
	}
	hosts := make([]string, 1+rng.Intn(4))
	for k := range hosts {
		hosts[k] = fmt.Sprintf("h%d-%d.%s.example.com", i, k, tenant)
	}
	if rng.Intn(10) == 0 {
		hosts = append(hosts, hosts[0])
	}
	return hosts
}

// soakAddress is the subject and body of a request for alert: the tenant
// named by the subject or the body (none when tenant is ""), the body in
// one of the three forms, with the correlation ID when it is JSON.
func soakAddress(rng *rand.Rand, alert, tenant, correlation string) (string, []byte) {
	subject := requestSubject
	bodyTenant := ""
	if tenant != "" {
		if rng.Intn(2) == 0 {
			subject += "." + tenant
		} else {
			bodyTenant = tenant
		}
	}
	form := rng.Intn(3)
	if bodyTenant != "" && form == 0 {
		form = 1
	}
	switch form {
	case 0:
		return subject, []byte(alert)
	case 1:
		b := fmt.Sprintf(`{"alertId":%q,"correlationId":%q`, alert, correlation)
		if bodyTenant != "" {
			b += fmt.Sprintf(`,"tenant":%q`, bodyTenant)
		}
		return subject, []byte(b + "}")
	default:
		b := fmt.Sprintf(`{"id":%q,"title":"Suspicious connection","severity":"medium","correlationId":%q`, alert, correlation)
		if bodyTenant != "" {
			b += fmt.Sprintf(`,"tenant":%q`, bodyTenant)
		}
		return subject, []byte(b + "}")
	}
}

// soakInvalidBodies are requests the contract answers invalid_request.
var soakInvalidBodies = []string{
	"",
	"not an alert id!",
	strings.Repeat("a", 129),
	`{"alertId":42}`,
	`{"alertId":"../../etc/passwd"}`,
	`{"correlationId":"siem-no-id"}`,
	"\xff\xfe\xfd",
	`[1,2,3]`,
	`{"alertId":"da1 2"}`,
}

// soakScripter queues a request's scripted answers with its tenant's
// Defender before the request is published.
type soakScripter func(tenant, alert string, answers ...emulator.Answer)

// publishSoakLoad publishes the requests evenly over span from now, each
// under its message ID, trying a publish again (the stream drops a second
// copy) until it is stored or ctx ends. It returns how many were stored,
// and the first error that stopped it.
func publishSoakLoad(ctx context.Context, js jetstream.JetStream, reqs []soakRequest, span time.Duration, script soakScripter) (int, error) {
	start := time.Now()
	stored := 0
	for i, r := range reqs {
		due := start.Add(span * time.Duration(i) / time.Duration(len(reqs)))
		if err := sleepUntil(ctx, due); err != nil {
			return stored, err
		}
		if len(r.Scripts) > 0 {
			script(r.Tenant, r.Alert, r.Scripts...)
		}
		msg := &nats.Msg{Subject: r.Subject, Data: r.Body, Header: nats.Header{}}
		for k, v := range r.Header {
			msg.Header[k] = v
		}
		for {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(r.MsgID))
			cancel()
			if err == nil {
				stored++
				break
			}
			// A stream without a leader answers at once: not too often.
			if werr := sleepUntil(ctx, time.Now().Add(100*time.Millisecond)); werr != nil {
				return stored, fmt.Errorf("request %s not stored: %w", r.MsgID, errors.Join(err, werr))
			}
		}
	}
	return stored, nil
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
