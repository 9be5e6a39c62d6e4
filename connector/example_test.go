package connector_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// The domains of an alert on Microsoft Graph: the hosts of the URLs in its
// evidence. An ID in the endpoint API's form, which Graph does not know,
// is asked again with Graph's prefix.
func ExampleClient_Domains() {
	srv := emulator.NewServer(emulator.Config{SeedData: true})
	defer srv.Close()

	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		fmt.Println(err)
		return
	}
	limits, _ := connector.ParseLimits(connector.Graph.DefaultRateLimits())
	client, err := connector.New(connector.Graph, srv.URL, cred, emulator.GraphScope,
		connector.WithHTTPClient(srv.Client()),
		connector.WithQuota(connector.NewLimiter(limits)),
		connector.WithTimeout(10*time.Second),
	)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	res, err := client.Domains(ctx, "da637472900382838869_1364969609")
	fmt.Println(res.Domains, res.Attempts, err)

	res, err = client.Domains(ctx, "637612345678901234_1122334455")
	fmt.Println(res.Domains, res.Attempts, res.GraphAlertID, err)

	_, err = client.Domains(ctx, "da000000000000000000_1")
	fmt.Println(message.KindOf(err), err)
	// Output:
	// [www.example.com cdn.example.net] 1 <nil>
	// [portal.example.net mail.example.net] 2 da637612345678901234_1122334455 <nil>
	// not_found alert not found (http 404, NotFound)
}
