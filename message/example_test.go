package message_test

import (
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

// The three forms of a request body, and one that is not a request.
func ExampleDecode() {
	for _, body := range []string{
		`da637472900382838869_1364969609`,
		`{"alertId": "da637472900382838869_1364969609", "correlationId": "case-42"}`,
		`{"id": "da637472900382838869_1364969609", "title": "Suspicious connection"}`,
		`{"alertId": "../etc/passwd"}`,
	} {
		req, err := message.Decode([]byte(body), nil)
		if err != nil {
			fmt.Println(message.KindOf(err), err)
			continue
		}
		fmt.Printf("%s %q\n", req.AlertID, req.CorrelationID)
	}
	// Output:
	// da637472900382838869_1364969609 ""
	// da637472900382838869_1364969609 "case-42"
	// da637472900382838869_1364969609 ""
	// invalid_request alertId is not 1 to 128 characters of A-Z a-z 0-9 _ -: invalid request
}

// A result message as subscribers receive it: the JSON body and the
// headers, under a message ID that is the same for every delivery of the
// request, so that the result stream stores one result per request.
func ExampleResult_Message() {
	stored := time.Date(2026, 11, 27, 9, 14, 3, 0, time.UTC)
	req, _ := message.Decode([]byte(`{"alertId": "da637472900382838869_1364969609", "correlationId": "case-42"}`), nil)
	res := message.Success(req.AlertID, []string{"contoso.example"}, 1, false, stored.Add(1500*time.Millisecond))
	res.CorrelationID, res.RequestSequence, res.Delivery = req.CorrelationID, 7, 1
	msg, err := res.Message(res.Subject("alerts.domains.success", "alerts.domains.failure"), message.ResultMsgID("ALERT_REQUESTS", 7, stored), "")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(msg.Subject)
	for _, h := range []string{message.HeaderMsgID, message.HeaderResultStatus, message.HeaderAlertID, message.HeaderCorrelationID} {
		fmt.Printf("%s: %s\n", h, msg.Header.Get(h))
	}
	fmt.Println(string(msg.Data))

	failure := message.Failure(req.AlertID, &message.Error{Kind: message.KindUnknownTenant, Message: `unknown tenant: "initech" is not configured`}, 0, stored)
	fmt.Println(failure.Kind(), failure.Kind().Retryable())
	// Output:
	// alerts.domains.success
	// Nats-Msg-Id: result-ALERT_REQUESTS-7-1795770843000000000
	// Result-Status: success
	// Alert-Id: da637472900382838869_1364969609
	// Correlation-Id: case-42
	// {"status":"success","alertId":"da637472900382838869_1364969609","domains":["contoso.example"],"attempts":1,"cached":false,"correlationId":"case-42","requestSequence":7,"delivery":1,"completedAt":"2026-11-27T09:14:04.500Z"}
	// unknown_tenant false
}
