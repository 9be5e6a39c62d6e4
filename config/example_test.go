package config_test

import (
	"errors"
	"fmt"

	"github.com/alert-domains/alert-domains/config"
)

// Load reads the environment once, at start: unset variables take their
// defaults, the API and the cloud decide Microsoft's URLs, secrets never print, and
// a bad value is an error that names its variable.
func Example() {
	cfg, err := config.Load(config.MapEnv(map[string]string{
		"NATS_URL":             "nats://nats.example:4222",
		"DEFENDER_CLOUD":       "gcc",
		"DEFENDER_RATE_LIMITS": "50/1m",
		"AZURE_TENANT_ID":      "6f1c2b9e-0000-4000-8000-000000000001",
		"AZURE_CLIENT_ID":      "0a3e5f7d-0000-4000-8000-000000000002",
		"AZURE_CLIENT_SECRET":  "not-to-be-printed",
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.NATSURL, cfg.ConsumerName, cfg.Concurrency, cfg.MaxDeliver)
	fmt.Println(cfg.DefenderAPIURL, cfg.RateLimits)
	fmt.Println(cfg.AzureClientSecret)

	_, err = config.Load(config.MapEnv(map[string]string{"CONCURRENCY": "lots"}))
	fmt.Println(errors.Is(err, config.ErrInvalid), err)
	// Output:
	// nats://nats.example:4222 alert-domains 16 10
	// https://graph.microsoft.com [50/1m0s]
	// [redacted]
	// true invalid configuration: CONCURRENCY="lots": not an integer
}
