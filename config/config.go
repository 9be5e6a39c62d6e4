// Package config reads the service's configuration, once, at start: the
// environment into one struct per concern, and the tenants file.
package config

import (
	"errors"
	"log/slog"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// ErrInvalid is wrapped by every configuration error (exit status 2).
var ErrInvalid = errors.New("invalid configuration")

// Bounds of CONCURRENCY (more is better spread over replicas) and STREAM_REPLICAS.
const (
	MaxConcurrency    = 1024
	MaxStreamReplicas = 5
)

// Config is every environment variable of the contract, one group per concern.
type Config struct {
	NATS       `group:"NATS"`
	Streams    `group:"Streams, subjects, consumer"`
	Microsoft  `group:"Microsoft API and tenants"`
	Operations `group:"Operations"`

	Warnings []Warning // removed variables still set, for the caller to log
}

// A field of a group is one variable (see Variables). An error never shows
// a sensitive one's value; emptyok keeps "" from the default.

// NATS is the connection to NATS, or the embedded server.
type NATS struct {
	NATSURL          string `envconfig:"NATS_URL" sensitive:"true" desc:"NATS server URL(s), comma separated; empty starts an embedded server with JetStream"`
	NATSCredsFile    string `envconfig:"NATS_CREDS_FILE" sensitive:"true" desc:"NATS credentials (JWT + nkey) file"`
	NATSNKeyFile     string `envconfig:"NATS_NKEY_FILE" sensitive:"true" desc:"NATS nkey seed file"`
	NATSUser         string `envconfig:"NATS_USER" sensitive:"true" desc:"NATS user name"`
	NATSPassword     Secret `envconfig:"NATS_PASSWORD" sensitive:"true" desc:"NATS password"`
	NATSToken        Secret `envconfig:"NATS_TOKEN" sensitive:"true" desc:"NATS token"`
	NATSTLSCAFile    string `envconfig:"NATS_TLS_CA_FILE" sensitive:"true" desc:"CA bundle that signs the NATS server certificate"`
	NATSTLSCertFile  string `envconfig:"NATS_TLS_CERT_FILE" sensitive:"true" desc:"client certificate for mutual TLS"`
	NATSTLSKeyFile   string `envconfig:"NATS_TLS_KEY_FILE" sensitive:"true" desc:"client key for mutual TLS"`
	EmbeddedListen   string `envconfig:"NATS_EMBEDDED_LISTEN" default:"127.0.0.1:4222" desc:"where the embedded server listens"`
	EmbeddedStoreDir string `envconfig:"NATS_EMBEDDED_STORE_DIR" default:"./data/nats" desc:"JetStream storage of the embedded server"`
}

// Streams is what the service keeps in JetStream and how it consumes it.
type Streams struct {
	RequestStream   string        `envconfig:"REQUEST_STREAM" default:"DEFENDER_ALERT_DOMAIN_REQUESTS" desc:"stream that stores requests"`
	RequestSubject  string        `envconfig:"REQUEST_SUBJECT" default:"defender.alerts.domains.requests" desc:"subject publishers send alert IDs to"`
	ResultStream    string        `envconfig:"RESULT_STREAM" default:"DEFENDER_ALERT_DOMAIN_RESULTS" desc:"stream that stores both result subjects"`
	SuccessSubject  string        `envconfig:"SUCCESS_SUBJECT" default:"defender.alerts.domains.success" desc:"success results"`
	FailureSubject  string        `envconfig:"FAILURE_SUBJECT" default:"defender.alerts.domains.failure" desc:"failure results"`
	ConsumerName    string        `envconfig:"CONSUMER_NAME" default:"alert-domains" desc:"durable pull consumer shared by every replica"`
	Provision       bool          `envconfig:"PROVISION" default:"true" desc:"create or update streams, consumers and the quota's streams and bucket at start"`
	Concurrency     int           `envconfig:"CONCURRENCY" default:"16" desc:"requests processed at once by one process (at most 1024)"`
	AckWait         time.Duration `envconfig:"ACK_WAIT" default:"30s" desc:"redelivery timer of the consumer"`
	MaxDeliver      int           `envconfig:"MAX_DELIVER" default:"10" desc:"deliveries of one request before it ends in a failure result"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s" desc:"time in-flight work gets after SIGTERM or SIGINT (quota waiters are handed back at once; the whole shutdown takes at most this + 5s)"`
	StreamReplicas  int           `envconfig:"STREAM_REPLICAS" default:"1" desc:"replicas of every stream and bucket provisioned (1..5; 3 on a three-node cluster)"`
}

// Microsoft is the API asked, its quota and retries, and the app registration.
type Microsoft struct {
	DefenderAPI          string        `envconfig:"DEFENDER_API" default:"graph" desc:"which Microsoft API answers: graph (Microsoft Graph security API) or mde (Defender for Endpoint API, retired 2027-02-01)"`
	DefenderCloud        string        `envconfig:"DEFENDER_CLOUD" default:"public" desc:"public, gcc, gcc-high or dod"`
	DefenderAPIURL       string        `envconfig:"DEFENDER_API_URL" desc:"API base (https); default by API and cloud"`
	DefenderScope        string        `envconfig:"DEFENDER_SCOPE" desc:"token scope; default by API and cloud"`
	DefenderTimeout      time.Duration `envconfig:"DEFENDER_TIMEOUT" default:"30s" desc:"one HTTP attempt"`
	DefenderRateLimits   string        `envconfig:"DEFENDER_RATE_LIMITS" desc:"client-side quota: count/window,...; none disables; default by API (graph 150/1m, mde 100/1m,1500/1h)"`
	QuotaScope           string        `envconfig:"QUOTA_SCOPE" default:"shared" desc:"shared: one quota for every replica, kept in JetStream; process: each process counts alone"`
	RetryInitialInterval time.Duration `envconfig:"RETRY_INITIAL_INTERVAL" default:"1s" desc:"first backoff wait"`
	RetryMaxInterval     time.Duration `envconfig:"RETRY_MAX_INTERVAL" default:"60s" desc:"longest backoff wait"`
	RetryMaxElapsed      time.Duration `envconfig:"RETRY_MAX_ELAPSED" default:"10m" desc:"retry budget of one delivery"`

	AzureTenantID                  string `envconfig:"AZURE_TENANT_ID" sensitive:"credential" desc:"Entra tenant of the app registration"`
	AzureClientID                  string `envconfig:"AZURE_CLIENT_ID" sensitive:"credential" desc:"app (client) ID"`
	AzureClientSecret              Secret `envconfig:"AZURE_CLIENT_SECRET" sensitive:"credential" desc:"client secret credential"`
	AzureClientCertificatePath     string `envconfig:"AZURE_CLIENT_CERTIFICATE_PATH" sensitive:"credential" desc:"certificate credential (PEM or PKCS#12)"`
	AzureClientCertificatePassword Secret `envconfig:"AZURE_CLIENT_CERTIFICATE_PASSWORD" sensitive:"credential" desc:"password of the certificate"`
	AzureFederatedTokenFile        string `envconfig:"AZURE_FEDERATED_TOKEN_FILE" sensitive:"credential" desc:"workload identity token file"`
	AzureAuthorityHost             string `envconfig:"AZURE_AUTHORITY_HOST" sensitive:"true" desc:"Entra host (https); default by cloud"`
	DefenderManagedIdentity        bool   `envconfig:"DEFENDER_MANAGED_IDENTITY" sensitive:"credential" default:"false" desc:"use the Azure managed identity"`
	TenantsFile                    string `envconfig:"TENANTS_FILE" desc:"YAML file of the customer tenants served (name, app registration, credential by reference); replaces AZURE_TENANT_ID, AZURE_CLIENT_ID and the AZURE_* credential"`

	// Resolved at load, as are the defaults of the endpoint variables.
	API        connector.API     `ignored:"true"`
	RateLimits []connector.Limit `ignored:"true"`
	explicit   spec              // the endpoint variables as set: every tenant's defaults
}

// Operations is the process's own surface: probes, logs, hooks, cache.
type Operations struct {
	HTTPListen    string        `envconfig:"HTTP_LISTEN" default:"127.0.0.1:8080" emptyok:"true" desc:"/livez, /readyz, /metrics; empty disables"`
	LogFormat     string        `envconfig:"LOG_FORMAT" desc:"text or json; default text on a terminal, json otherwise"`
	LogLevel      string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn, error"`
	OnSuccessExec string        `envconfig:"ON_SUCCESS_EXEC" desc:"program run with each success result on stdin, at least once"`
	OnFailureExec string        `envconfig:"ON_FAILURE_EXEC" desc:"program run with each failure result on stdin, at least once"`
	ExecTimeout   time.Duration `envconfig:"EXEC_TIMEOUT" default:"10s" desc:"time limit of a result hook"`
	HookEnv       string        `envconfig:"HOOK_ENV" desc:"variables (comma separated) a result hook gets beside PATH, HOME, TZ, LANG and TENANT; never a credential"`
	CacheTTL      time.Duration `envconfig:"CACHE_TTL" default:"1h" desc:"how long success results answer repeated requests; 0 disables"`

	Level         slog.Level `ignored:"true"` // LOG_LEVEL, resolved at load
	HookVariables []string   `ignored:"true"` // HOOK_ENV, resolved at load
}

// removed are variables no longer read: set, each is a warning, not an error.
var removed = []Warning{
	{"COALESCE_SCOPE", "no longer read: concurrent requests for one alert share one call within a process, and the result cache answers repeats across replicas; remove it from the environment"},
}

// Warning is a variable Load ignores, and why.
type Warning struct {
	Variable string
	Message  string
}

// Lookup reads one environment variable and reports whether it is set (os.LookupEnv).
type Lookup func(key string) (value string, set bool)

// MapEnv is a Lookup over a map.
func MapEnv(m map[string]string) Lookup {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Load reads every variable through lookup, with defaults, and validates them.
func Load(lookup Lookup) (*Config, error) {
	c := &Config{}
	for _, v := range variables(c) {
		if err := v.read(lookup); err != nil {
			return nil, err
		}
	}
	for _, r := range removed {
		if _, set := lookup(r.Variable); set {
			c.Warnings = append(c.Warnings, r)
		}
	}
	for _, check := range []func() error{c.NATS.check, c.Streams.check, c.Microsoft.resolve, c.Operations.check} {
		if err := check(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// DuplicateWindow is the result stream's duplicate window: it outlasts
// every delivery of a request, and 2 minutes.
func (c *Config) DuplicateWindow() time.Duration {
	w := c.AckWait*time.Duration(c.MaxDeliver) + c.RetryMaxElapsed
	return max(w, 2*time.Minute)
}
