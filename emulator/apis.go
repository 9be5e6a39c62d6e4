package emulator

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

func (e *Emulator) alert(w http.ResponseWriter, r *http.Request, api connector.API) {
	id := r.PathValue("id")
	now := time.Now()
	e.mu.Lock()
	e.callsOf[api]++
	e.callsFor[id]++
	e.callTimes = append(e.callTimes, now)
	if len(e.callTimes) >= 2*maxCallTimes {
		e.callTimes = append(e.callTimes[:0], e.callTimes[len(e.callTimes)-maxCallTimes:]...)
	}
	tok, hasTok := e.tokens[bearerToken(r)]
	e.mu.Unlock()

	switch {
	case !hasTok || now.After(tok.expires):
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		e.apiError(w, r, api, http.StatusUnauthorized, "Access token is missing, invalid or expired.")
		return
	case tok.api != api:
		e.apiError(w, r, api, http.StatusForbidden, "The access token has a wrong audience.")
		return
	case !slices.ContainsFunc(tok.roles, func(p string) bool { return slices.Contains(required[api], p) }):
		e.apiError(w, r, api, http.StatusForbidden, "Missing application roles. API required roles: "+strings.Join(required[api], ", ")+".")
		return
	}
	// A scripted answer is given to a call with a valid token only.
	e.mu.Lock()
	q := e.scripts[id]
	script, scripted := pop(&q)
	if e.scripts[id] = q; len(q) == 0 {
		delete(e.scripts, id)
	}
	outage, quota := e.outage, e.quota[api]
	e.mu.Unlock()
	switch {
	case scripted:
		e.serveAnswer(w, r, api, script)
	case outage != 0:
		e.apiError(w, r, api, outage, "The service is unavailable.")
	default:
		if ok, retryIn := quota.Allow(); !ok {
			secs := int((retryIn + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			e.apiError(w, r, api, http.StatusTooManyRequests, "API calls quota exceeded! Maximum allowed is the configured rate.")
			return
		}
		e.answerAlert(w, r, api, id)
	}
}

// answerAlert answers a call within quota, after the latency.
func (e *Emulator) answerAlert(w http.ResponseWriter, r *http.Request, api connector.API, id string) {
	e.mu.Lock()
	fault := e.cfg.FaultRate > 0 && e.rng.Float64() < e.cfg.FaultRate
	hosts, known := e.lookup(api, id)
	e.mu.Unlock()

	if e.cfg.Latency > 0 && !e.pause(r.Context(), e.cfg.Latency) {
		abort()
	}
	switch {
	case fault:
		e.apiError(w, r, api, http.StatusServiceUnavailable, "An unexpected error occurred. Try again later.")
		return
	case message.ValidateAlertID(id) != nil:
		e.apiError(w, r, api, http.StatusBadRequest, "The alert id is not valid.")
		return
	case !known && (!e.cfg.AnyAlert || (api == connector.Graph && bareEndpointID.MatchString(id))):
		e.apiError(w, r, api, http.StatusNotFound, fmt.Sprintf("Alert %s was not found", id))
		return
	case !known:
		hosts = syntheticHosts(endpointID(id))
	}
	e.count(http.StatusOK)
	if api == connector.Graph {
		writeJSON(w, http.StatusOK, graphAlert(id, e.cfg.TenantID, hosts))
		return
	}
	writeJSON(w, http.StatusOK, domainsPage(r, hosts, e.cfg.PageSize))
}

// required are the permissions that allow each API's call.
var required = map[connector.API][]string{
	connector.Graph: {GraphPermission, "SecurityAlert.ReadWrite.All"},
	connector.MDE:   {MDEPermission},
}

// bareEndpointID is an endpoint alert ID that Graph knows only as "da" + ID.
var bareEndpointID = regexp.MustCompile(`^(?:[0-9]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_-?[0-9]+$`)

func (e *Emulator) lookup(api connector.API, id string) ([]string, bool) {
	if api == connector.Graph && bareEndpointID.MatchString(id) {
		return nil, false
	}
	hosts, ok := e.alerts[id]
	if !ok && api == connector.Graph {
		hosts, ok = e.alerts[endpointID(id)]
	}
	return hosts, ok
}

// endpointID is the data's key of an alert asked as id ("da" stripped).
func endpointID(id string) string {
	if bare, ok := strings.CutPrefix(id, "da"); ok && bareEndpointID.MatchString(bare) {
		return bare
	}
	return id
}

// domainsPage is the endpoint API's answer, in pages when pageSize is set.
func domainsPage(r *http.Request, hosts []string, pageSize int) any {
	type entry struct {
		Host string `json:"host"`
	}
	answer := struct {
		Context  string  `json:"@odata.context"`
		Value    []entry `json:"value"`
		NextLink string  `json:"@odata.nextLink,omitempty"`
	}{Context: "https://api.securitycenter.microsoft.com/api/$metadata#Domains", Value: []entry{}}
	if pageSize > 0 && len(hosts) > pageSize {
		skip, _ := strconv.Atoi(r.URL.Query().Get("$skip"))
		skip = min(max(skip, 0), len(hosts))
		end := min(skip+pageSize, len(hosts))
		if end < len(hosts) {
			answer.NextLink = baseURL(r) + r.URL.EscapedPath() + "?$skip=" + strconv.Itoa(end)
		}
		hosts = hosts[skip:end]
	}
	for _, h := range hosts {
		answer.Value = append(answer.Value, entry{h})
	}
	return answer
}

// graphAlert is Graph's alert object for an alert with hosts.
func graphAlert(id, tenant string, hosts []string) map[string]any {
	seed := hashOf(id)
	created := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seed%(30*24*3600)) * time.Second)
	stamp := created.Format("2006-01-02T15:04:05.0000000Z")
	evidence := graphEvidence(seed, stamp, hosts)
	return map[string]any{
		"@odata.context":        "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2/$entity",
		"@odata.type":           "#microsoft.graph.security.alert",
		"id":                    id,
		"providerAlertId":       id,
		"incidentId":            strconv.FormatUint(seed%100000, 10),
		"status":                "new",
		"severity":              "medium",
		"classification":        nil,
		"determination":         nil,
		"serviceSource":         "microsoftDefenderForEndpoint",
		"detectionSource":       "microsoftDefenderForEndpoint",
		"productName":           "Microsoft Defender for Endpoint",
		"detectorId":            "e0da400f-affd-43ef-b1d5-afc2eb6f2756",
		"tenantId":              tenant,
		"title":                 "Connection to a suspicious domain",
		"description":           "A process on the device connected to a domain associated with malicious activity.",
		"recommendedActions":    "Review the device timeline; block the domains at the perimeter.",
		"category":              "CommandAndControl",
		"assignedTo":            nil,
		"alertWebUrl":           "https://security.microsoft.com/alerts/" + id + "?tid=" + tenant,
		"incidentWebUrl":        "https://security.microsoft.com/incidents/" + strconv.FormatUint(seed%100000, 10) + "?tid=" + tenant,
		"actorDisplayName":      nil,
		"threatDisplayName":     nil,
		"threatFamilyName":      nil,
		"mitreTechniques":       []string{"T1071.001"},
		"createdDateTime":       stamp,
		"lastUpdateDateTime":    stamp,
		"resolvedDateTime":      nil,
		"firstActivityDateTime": stamp,
		"lastActivityDateTime":  stamp,
		"comments":              []any{},
		"evidence":              evidence,
		"systemTags":            []string{},
	}
}

// graphEvidence holds non-domains, URLs in Microsoft's forms (port, case, dot), an IP.
func graphEvidence(seed uint64, stamp string, hosts []string) []any {
	base := func(typ string, roles ...string) map[string]any {
		return map[string]any{
			"@odata.type":              "#microsoft.graph.security." + typ,
			"createdDateTime":          stamp,
			"verdict":                  "suspicious",
			"remediationStatus":        "none",
			"remediationStatusDetails": nil,
			"roles":                    append([]string{}, roles...),
			"detailedRoles":            []string{},
			"tags":                     []string{},
		}
	}
	device := base("deviceEvidence", "compromised")
	device["mdeDeviceId"] = fmt.Sprintf("%040x", seed)
	device["deviceDnsName"] = fmt.Sprintf("ws-%04d.corp.contoso.example", seed%10000)
	device["osPlatform"] = "Windows11"
	device["ipInterfaces"] = []string{"10.1.2.3"}
	user := base("userEvidence", "compromised")
	user["userAccount"] = map[string]any{"accountName": "jdoe", "domainName": "CONTOSO", "userSid": "S-1-5-21-1-2-3-1104", "userPrincipalName": "jdoe@contoso.example"}
	evidence := []any{device, user}
	var message map[string]any
	for i, h := range hosts {
		switch i % 3 {
		case 0:
			u := base("urlEvidence", "contextual")
			u["url"] = "https://" + h + "/"
			evidence = append(evidence, u)
		case 1:
			u := base("urlEvidence", "commandAndControl")
			u["url"] = "http://svc@" + strings.ToUpper(h) + ":8080/download?file=update.exe"
			evidence = append(evidence, u)
		default:
			if message == nil {
				message = base("analyzedMessageEvidence", "contextual")
				message["subject"] = "Action required: verify your account"
				message["recipientEmailAddress"] = "jdoe@contoso.example"
				message["urls"] = []string{"http://198.51.100.7/track"}
				evidence = append(evidence, message)
			}
			message["urls"] = append(message["urls"].([]string), "https://"+h+"./signin?session="+strconv.Itoa(i))
		}
	}
	ip := base("ipEvidence", "destination")
	ip["ipAddress"] = "203.0.113." + strconv.Itoa(int(seed%250)+1)
	evidence = append(evidence, ip)
	return evidence
}

func (e *Emulator) apiError(w http.ResponseWriter, r *http.Request, api connector.API, status int, text string) {
	e.count(status)
	if api == connector.MDE {
		writeJSON(w, status, map[string]any{"error": map[string]string{
			"code":    errorCode(api, status),
			"message": text,
			"target":  e.trackingID(),
		}})
		return
	}
	requestID := e.trackingID()
	clientRequestID := cmp.Or(r.Header.Get("client-request-id"), requestID)
	w.Header().Set("request-id", requestID)
	w.Header().Set("client-request-id", clientRequestID)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code":    errorCode(api, status),
		"message": text,
		"innerError": map[string]string{
			"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        requestID,
			"client-request-id": clientRequestID,
		},
	}})
}

func (e *Emulator) trackingID() string {
	return fmt.Sprintf("e0000000-0000-4000-8000-%012x", e.tracking.Add(1))
}

func (e *Emulator) count(status int) { e.with(func() { e.answered[status]++ }) }

// errorCodes are the error.code each API sends with a status.
var errorCodes = map[connector.API]map[int]string{
	connector.MDE:   {401: "Unauthorized", 403: "Forbidden", 404: "ResourceNotFound", 429: "TooManyRequests"},
	connector.Graph: {401: "InvalidAuthenticationToken", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"},
}

func errorCode(api connector.API, status int) string {
	if c, ok := errorCodes[api][status]; ok {
		return c
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return "BadRequest"
}

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// hashOf is the FNV-1a hash of id, the seed of what is made up for an alert.
func hashOf(id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// syntheticHosts are the 1 to 3 hosts of an alert WithAnyAlert makes up.
func syntheticHosts(id string) []string {
	sum := hashOf(id)
	tlds := [...]string{"example.com", "example.net", "example.org", "example.io"}
	hosts := make([]string, 1+sum%3)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%06x-%d.%s", (sum>>8)&0xffffff, i, tlds[(sum>>(16+4*i))%4])
	}
	return hosts
}

// pause waits d, or until the client leaves or the emulator closes.
func (e *Emulator) pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
	case <-e.done:
	}
	return false
}

func pop[T any](q *[]T) (v T, ok bool) {
	if len(*q) == 0 {
		return v, false
	}
	v, *q = (*q)[0], (*q)[1:]
	return v, true
}

// abort cuts the connection with no status: a plain return would send a 200.
func abort() { panic(http.ErrAbortHandler) }

func (e *Emulator) serveAnswer(w http.ResponseWriter, r *http.Request, api connector.API, a Answer) {
	if a.Delay > 0 && !e.pause(r.Context(), a.Delay) {
		abort()
	}
	status := cmp.Or(a.Status, http.StatusOK)
	for k, vs := range a.Header {
		w.Header()[k] = append([]string(nil), vs...)
	}
	jsonBody := strings.HasPrefix(strings.TrimSpace(a.Body), "{") || a.BodyBytes > 0 || a.Slow
	if jsonBody && w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	head, tail := `{"value":[{"host":"`, `"}]}`
	if api == connector.Graph {
		head, tail = `{"id":"`+r.PathValue("id")+`","evidence":[{"@odata.type":"#microsoft.graph.security.urlEvidence","url":"https://`, `.example/"}]}`
	}
	e.count(status)
	switch {
	case a.Slow:
		w.WriteHeader(status)
		rc := http.NewResponseController(w)
		_, err := io.WriteString(w, head)
		for err == nil && rc.Flush() == nil && e.pause(r.Context(), 20*time.Millisecond) {
			_, err = io.WriteString(w, "a")
		}
		abort() // cut the connection rather than end the answer cleanly
	case a.BodyBytes > 0:
		n := max(a.BodyBytes-int64(len(head)+len(tail)), 1)
		if !a.NoLength {
			w.Header().Set("Content-Length", strconv.FormatInt(int64(len(head))+n+int64(len(tail)), 10))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, head)
		chunk := []byte(strings.Repeat("a", 32<<10))
		for n > 0 {
			k := min(n, int64(len(chunk)))
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
			n -= k
		}
		_, _ = io.WriteString(w, tail)
	default:
		w.Header().Set("Content-Length", strconv.Itoa(len(a.Body)))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, a.Body)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
