package connector_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

func ExampleClient_Domains() {
	srv := emulator.NewServer(emulator.WithSeedData())
	defer srv.Close()

	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		fmt.Println(err)
		return
	}
	limits, _ := connector.ParseLimits("100/1m,1500/1h")
	client, err := connector.New(srv.URL, cred, emulator.Scope,
		connector.WithHTTPClient(srv.Client()),
		connector.WithLimiter(connector.NewLimiter(limits)),
		connector.WithTimeout(10*time.Second),
	)
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	res, err := client.Domains(ctx, "da637472900382838869_1364969609")
	fmt.Println(res.Domains, res.Attempts, err)

	_, err = client.Domains(ctx, "da000000000000000000_1")
	fmt.Println(message.KindOf(err), err)
	// Output:
	// [www.example.com cdn.example.net] 1 <nil>
	// not_found alert not found (http 404, ResourceNotFound)
}
