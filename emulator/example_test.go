package emulator_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
)

func ExampleNewServer() {
	srv := emulator.NewServer(emulator.Config{Alerts: map[string][]string{"da637472900382838869_1364969609": {"www.example.com"}}})
	defer srv.Close()
	srv.Script("da637472900382838869_1364969609", emulator.Answer{Status: 503})

	cred, err := connector.NewCredential(srv.Credential())
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := connector.New(connector.Graph, srv.URL, cred, emulator.GraphScope,
		connector.WithHTTPClient(srv.Client()),
		connector.WithBackoff(10*time.Millisecond, time.Second, time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := c.Domains(context.Background(), "da637472900382838869_1364969609")
	fmt.Println(res.Domains, res.Attempts, err, srv.Answered(503), srv.TokensIssued())
	// Output: [www.example.com] 2 <nil> 1 1
}
