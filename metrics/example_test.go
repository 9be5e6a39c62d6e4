package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/consumer"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/metrics"
)

func Example() {
	m := metrics.New()
	handler := consumer.Chain(func(ctx context.Context, d *consumer.Delivery) consumer.Outcome {
		res := message.Success("da637472900382838869_1364969609", []string{"www.example.com"}, 1, false, time.Now())
		return consumer.Outcome{Action: consumer.Ack, Result: res, Stored: true}
	}, m.Middleware())
	handler(context.Background(), &consumer.Delivery{})
	m.Tenant(metrics.NoTenant, "").DefenderCall(200, 120*time.Millisecond)

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		// Every known series is exported from 0; these are the ones counted.
		if (strings.HasPrefix(line, "alert_domains_results_total") || strings.HasPrefix(line, "alert_domains_defender_calls_total")) && !strings.HasSuffix(line, " 0") {
			fmt.Println(line)
		}
	}
	// Output:
	// alert_domains_defender_calls_total{api="",code="200",tenant=""} 1
	// alert_domains_results_total{api="",kind="",status="success",tenant=""} 1
}
