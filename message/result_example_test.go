package message_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/message"
)

// A playbook reads a result as the failure subject delivers it and decides
// by its kind: a retryable kind (throttled, unavailable) is worth a replay
// once the cause is gone; the others would fail the same way again.
func ExampleResult_Kind() {
	data := []byte(`{"status":"failure","tenant":"contoso","alertId":"da637472900382838869_1364969609",` +
		`"api":"graph","error":{"kind":"throttled","message":"throttled by defender","httpStatus":429,"code":"TooManyRequests"},` +
		`"attempts":3,"correlationId":"siem-42","requestSequence":1043,"completedAt":"2026-11-27T09:14:03.518Z"}`)
	var res message.Result
	if err := json.Unmarshal(data, &res); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Tenant, res.AlertID)
	fmt.Println(res.Kind(), res.Kind().Retryable(), res.Error.HTTPStatus, res.Error.Code)
	fmt.Printf("kind of a success: %q\n", message.Success(res.AlertID, nil, 1, false, time.Now()).Kind())
	// Output:
	// failure contoso da637472900382838869_1364969609
	// throttled true 429 TooManyRequests
	// kind of a success: ""
}

// Which alert IDs a request may carry: 1 to 128 characters of A-Z a-z 0-9 _ -.
// Anything else is answered with an invalid_request failure and never sent
// to Microsoft.
func ExampleValidateAlertID() {
	for _, id := range []string{
		"da637472900382838869_1364969609",
		"da637551227677560813_-961444813",
		"../machines",
		"",
	} {
		if err := message.ValidateAlertID(id); err != nil {
			fmt.Printf("%q: %s, %v\n", id, message.KindOf(err), err)
			continue
		}
		fmt.Printf("%q: valid\n", id)
	}
	// Output:
	// "da637472900382838869_1364969609": valid
	// "da637551227677560813_-961444813": valid
	// "../machines": invalid_request, alert id has characters other than A-Z a-z 0-9 _ -
	// "": invalid_request, alert id is empty
}
