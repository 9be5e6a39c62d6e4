package emulator_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

// TestSyntheticAlertsAreOneSet: with WithAnyAlert, an endpoint ID
// that already starts with "da" is the same alert on both APIs (Graph's
// ID of an endpoint alert is the endpoint ID with "da", and one that
// already has it is the same in both).
func TestSyntheticAlertsAreOneSet(t *testing.T) {
	srv := newServer(t, emulator.Config{AnyAlert: true})
	graph, mde := newClient(t, srv, connector.Graph), newClient(t, srv, connector.MDE)
	for _, id := range []string{"da123_456", "da637472900382838869_1"} {
		g, gerr := graph.Domains(t.Context(), id)
		m, merr := mde.Domains(t.Context(), id)
		if gerr != nil || merr != nil || !reflect.DeepEqual(g.Domains, m.Domains) {
			t.Errorf("%s: graph %q (%v), mde %q (%v)", id, g.Domains, gerr, m.Domains, merr)
		}
	}
}

// TestProviderAlertID: Graph's example alert has providerAlertId
// equal to its id (da637578995287051192_756343937), prefix included.
func TestProviderAlertID(t *testing.T) {
	srv := newServer(t, emulator.Config{SeedData: true})
	const id = "da637472900382838869_1364969609"
	a := get(t, srv, "/v1.0/security/alerts_v2/"+id, tokenFor(t, srv, emulator.GraphScope))
	var alert graphAlert
	if err := json.Unmarshal([]byte(a.body), &alert); err != nil || alert.ProviderAlertID != id {
		t.Errorf("providerAlertId %q, want %q (%v)", alert.ProviderAlertID, id, err)
	}
}
