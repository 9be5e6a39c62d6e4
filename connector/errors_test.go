package connector_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
)

// TestErrorAnswers: on both APIs a status maps to the same failure kind;
// Error.Code is the error body's error.code, the tracking ID its target
// (the endpoint API) or request-id (Graph: the header or innerError); an
// HTML or empty error body gives no code.
func TestErrorAnswers(t *testing.T) {
	statuses := []struct {
		status int
		kind   message.Kind
		code   map[connector.API]string
	}{
		{400, message.KindBadRequest, map[connector.API]string{connector.MDE: "InvalidInput", connector.Graph: "BadRequest"}},
		{401, message.KindUnauthorized, map[connector.API]string{connector.MDE: "Unauthorized", connector.Graph: "InvalidAuthenticationToken"}},
		{403, message.KindForbidden, map[connector.API]string{connector.MDE: "Forbidden", connector.Graph: "Forbidden"}},
		{404, message.KindNotFound, map[connector.API]string{connector.MDE: "ResourceNotFound", connector.Graph: "NotFound"}},
		{405, message.KindBadRequest, map[connector.API]string{connector.MDE: "BadRequest", connector.Graph: "MethodNotAllowed"}},
		{429, message.KindThrottled, map[connector.API]string{connector.MDE: "TooManyRequests", connector.Graph: "TooManyRequests"}},
		{500, message.KindUnavailable, map[connector.API]string{connector.MDE: "InternalServerError", connector.Graph: "UnknownError"}},
		{502, message.KindUnavailable, map[connector.API]string{connector.MDE: "InternalServerError", connector.Graph: "BadGateway"}},
		{503, message.KindUnavailable, map[connector.API]string{connector.MDE: "InternalServerError", connector.Graph: "ServiceUnavailable"}},
		{504, message.KindUnavailable, map[connector.API]string{connector.MDE: "InternalServerError", connector.Graph: "GatewayTimeout"}},
	}
	bodies := []struct {
		name   string
		body   func(api connector.API, code string) string
		header bool // Graph's request-id header is sent (Graph only)
		code   bool // the code is read
		target bool // the tracking ID is read from the body
	}{
		{name: "json", body: errorBody, code: true, target: true},
		{name: "json and request-id header", body: errorBody, header: true, code: true, target: true},
		{name: "html", body: func(connector.API, string) string { return "<html><body><h1>Service Unavailable</h1></body></html>" }},
		{name: "empty", body: func(connector.API, string) string { return "" }},
		{name: "html with request-id header", body: func(connector.API, string) string { return "<html>Bad Gateway</html>" }, header: true},
	}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newPathServer(t, scripted{})
		// A budget that ends at the first retry: one attempt per lookup.
		c := srv.client(t, api, connector.WithBackoff(time.Hour, time.Hour, time.Millisecond))
		for _, st := range statuses {
			for _, b := range bodies {
				if b.header && api == connector.MDE {
					continue // a request-id header is Graph's
				}
				t.Run(strconv.Itoa(st.status)+"/"+b.name, func(t *testing.T) {
					a := scripted{status: st.status, body: b.body(api, st.code[api])}
					if b.header {
						a.header = header("request-id", scriptedRequestID, "client-request-id", scriptedClientID)
					}
					srv.script(a)
					_, err := c.Domains(t.Context(), alertID)
					e := asError(t, err)
					if e.Kind != st.kind || e.HTTPStatus != st.status || !errors.Is(err, &connector.Error{Kind: st.kind}) {
						t.Errorf("error = %+v, want %s %d", e, st.kind, st.status)
					}
					wantCode, wantTarget, wantRequestID := "", "", ""
					if b.code {
						wantCode = st.code[api]
					}
					if b.target && api == connector.MDE {
						wantTarget = scriptedTarget
					}
					if api == connector.Graph && (b.target || b.header) {
						wantRequestID = scriptedRequestID
					}
					if e.Code != wantCode || e.Target != wantTarget || e.RequestID != wantRequestID {
						t.Errorf("code %q, target %q, request id %q; want %q, %q, %q", e.Code, e.Target, e.RequestID, wantCode, wantTarget, wantRequestID)
					}
					info := e.ErrorInfo()
					if info.Kind != st.kind || info.HTTPStatus != st.status || info.Code != wantCode || info.Target != wantTarget || info.RequestID != wantRequestID {
						t.Errorf("ErrorInfo = %+v", info)
					}
					if wantCode != "" && !strings.Contains(e.Error(), wantCode) {
						t.Errorf("error %q does not name the code %s", e.Error(), wantCode)
					}
					if strings.Contains(e.Error(), "scripted free text") {
						t.Errorf("error %q repeats Microsoft's free text", e.Error())
					}
				})
			}
		}
	})
}

// TestErrorInfoInTheResult: the failure result of a lookup carries the
// request-id of a Graph error as requestId.
func TestErrorInfoInTheResult(t *testing.T) {
	srv := newPathServer(t, scripted{status: 404, header: header("request-id", scriptedRequestID), body: errorBody(connector.Graph, "NotFound")})
	c := srv.client(t, connector.Graph)
	_, err := c.Domains(t.Context(), alertID)
	res := message.Failure(alertID, err, 1, time.Now())
	b, jerr := json.Marshal(res)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var got struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Error["kind"] != "not_found" || got.Error["code"] != "NotFound" || got.Error["httpStatus"] != float64(404) {
		t.Errorf("error member %v", got.Error)
	}
	if got.Error["requestId"] != scriptedRequestID {
		t.Errorf("error member %v does not carry the request-id as requestId", got.Error)
	}
}

// TestForbiddenMessage: a 403 names the permission of the client's API,
// SecurityAlert.Read.All on Graph and URL.Read.All on the endpoint API,
// never the other's.
func TestForbiddenMessage(t *testing.T) {
	want := map[connector.API]string{connector.Graph: "SecurityAlert.Read.All", connector.MDE: "URL.Read.All"}
	forEachAPI(t, func(t *testing.T, api connector.API) {
		srv := newPathServer(t, scripted{status: 403, body: errorBody(api, "Forbidden")})
		c := srv.client(t, api)
		_, err := c.Domains(t.Context(), alertID)
		e := asError(t, err)
		other := want[connector.Graph]
		if api == connector.Graph {
			other = want[connector.MDE]
		}
		if e.Kind != message.KindForbidden || !strings.Contains(e.Message, want[api]) || strings.Contains(e.Message, other) {
			t.Errorf("message %q, want one that names %s and not %s", e.Message, want[api], other)
		}
		if !strings.Contains(e.Error(), want[api]) || e.ErrorInfo().Message != e.Message {
			t.Errorf("the permission is not in the error %q or its info", e.Error())
		}
	})
}
