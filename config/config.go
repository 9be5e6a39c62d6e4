// Package config reads the service's configuration from the environment,
// once, at start. Every variable of the public contract is a field of Config
// with its default; an invalid value is an error that names the variable.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/internal/redact"
)

// ErrInvalid is wrapped by every configuration error, so callers can tell a
// configuration mistake (exit status 2) from a run-time failure.
var ErrInvalid = errors.New("invalid configuration")

// MaxConcurrency is the most requests one process works on at once: each
// holds a worker, connections and read buffers, and more than this is
// better spread over replicas.
const MaxConcurrency = 1024

// Secret is a string that never prints: fmt, slog and JSON show it redacted.
type Secret string

const redacted = "[redacted]"

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps encoders from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that hands it on.
func (s Secret) Reveal() string { return string(s) }

// Config is every environment variable of the contract. The envconfig tags
// name the variable; default and desc feed `alert-domains help`.
type Config struct {
	NATSURL          string `envconfig:"NATS_URL" desc:"NATS server URL(s), comma separated; empty starts an embedded server with JetStream"`
	NATSCredsFile    string `envconfig:"NATS_CREDS_FILE" desc:"NATS credentials (JWT + nkey) file"`
	NATSNKeyFile     string `envconfig:"NATS_NKEY_FILE" desc:"NATS nkey seed file"`
	NATSUser         string `envconfig:"NATS_USER" desc:"NATS user name"`
	NATSPassword     Secret `envconfig:"NATS_PASSWORD" desc:"NATS password"`
	NATSToken        Secret `envconfig:"NATS_TOKEN" desc:"NATS token"`
	NATSTLSCAFile    string `envconfig:"NATS_TLS_CA_FILE" desc:"CA bundle that signs the NATS server certificate"`
	NATSTLSCertFile  string `envconfig:"NATS_TLS_CERT_FILE" desc:"client certificate for mutual TLS"`
	NATSTLSKeyFile   string `envconfig:"NATS_TLS_KEY_FILE" desc:"client key for mutual TLS"`
	EmbeddedListen   string `envconfig:"NATS_EMBEDDED_LISTEN" default:"127.0.0.1:4222" desc:"where the embedded server listens"`
	EmbeddedStoreDir string `envconfig:"NATS_EMBEDDED_STORE_DIR" default:"./data/nats" desc:"JetStream storage of the embedded server"`

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

	AzureTenantID                  string `envconfig:"AZURE_TENANT_ID" desc:"Entra tenant of the app registration"`
	AzureClientID                  string `envconfig:"AZURE_CLIENT_ID" desc:"app (client) ID"`
	AzureClientSecret              Secret `envconfig:"AZURE_CLIENT_SECRET" desc:"client secret credential"`
	AzureClientCertificatePath     string `envconfig:"AZURE_CLIENT_CERTIFICATE_PATH" desc:"certificate credential (PEM or PKCS#12)"`
	AzureClientCertificatePassword Secret `envconfig:"AZURE_CLIENT_CERTIFICATE_PASSWORD" desc:"password of the certificate"`
	AzureFederatedTokenFile        string `envconfig:"AZURE_FEDERATED_TOKEN_FILE" desc:"workload identity token file"`
	AzureAuthorityHost             string `envconfig:"AZURE_AUTHORITY_HOST" desc:"Entra host (https); default by cloud"`
	DefenderManagedIdentity        bool   `envconfig:"DEFENDER_MANAGED_IDENTITY" default:"false" desc:"use the Azure managed identity"`
	TenantsFile                    string `envconfig:"TENANTS_FILE" desc:"YAML file of the customer tenants served (name, app registration, credential by reference); replaces AZURE_TENANT_ID, AZURE_CLIENT_ID and the AZURE_* credential"`

	HTTPListen    string        `envconfig:"HTTP_LISTEN" default:"127.0.0.1:8080" emptyok:"true" desc:"/livez, /readyz, /metrics; empty disables"`
	LogFormat     string        `envconfig:"LOG_FORMAT" desc:"text or json; default text on a terminal, json otherwise"`
	LogLevel      string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn, error"`
	OnSuccessExec string        `envconfig:"ON_SUCCESS_EXEC" desc:"program run with each success result on stdin, at least once"`
	OnFailureExec string        `envconfig:"ON_FAILURE_EXEC" desc:"program run with each failure result on stdin, at least once"`
	ExecTimeout   time.Duration `envconfig:"EXEC_TIMEOUT" default:"10s" desc:"time limit of a result hook"`
	HookEnv       string        `envconfig:"HOOK_ENV" desc:"variables (comma separated) a result hook gets beside PATH, HOME, TZ, LANG and TENANT; never a credential"`
	CacheTTL      time.Duration `envconfig:"CACHE_TTL" default:"1h" desc:"how long success results answer repeated requests; 0 disables"`

	// Derived at load.
	API        connector.API     `ignored:"true"`
	RateLimits []connector.Limit `ignored:"true"`
	Level      slog.Level        `ignored:"true"`
}

// Lookup reads one environment variable and reports whether it is set
// (os.LookupEnv). A variable set to the empty string is set: HTTP_LISTEN=""
// disables the HTTP endpoints, while an unset HTTP_LISTEN takes the default.
type Lookup func(key string) (value string, set bool)

// MapEnv is a Lookup over a map, for tests and for commands that override
// part of the environment.
func MapEnv(m map[string]string) Lookup {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Load reads every variable through lookup, applies defaults to the unset
// ones, resolves the cloud defaults and validates the result.
func Load(lookup Lookup) (*Config, error) {
	c := &Config{}
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		if key == "" || f.Tag.Get("ignored") == "true" {
			continue
		}
		raw, set := lookup(key)
		raw = strings.TrimSpace(raw)
		if !set || (raw == "" && f.Tag.Get("emptyok") != "true") {
			raw, set = f.Tag.Get("default"), false
		}
		if err := setField(v.Field(i), raw); err != nil {
			shown := strconv.Quote(redact.URLs(raw))
			if f.Type == reflect.TypeOf(Secret("")) {
				shown = redacted
			}
			if !set {
				shown += " (default)"
			}
			return nil, fmt.Errorf("%w: %s=%s: %v", ErrInvalid, key, shown, err)
		}
	}
	if err := c.resolve(); err != nil {
		return nil, err
	}
	return c, nil
}

func setField(f reflect.Value, raw string) error {
	switch f.Interface().(type) {
	case time.Duration:
		if raw == "" {
			return nil
		}
		d, err := time.ParseDuration(raw)
		if err != nil {
			return errors.New("not a duration (use Go syntax such as 500ms, 30s, 5m)")
		}
		f.SetInt(int64(d))
	case bool:
		if raw == "" {
			return nil
		}
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		f.SetBool(b)
	case int:
		if raw == "" {
			return nil
		}
		n, err := strconv.Atoi(raw)
		if err != nil {
			return errors.New("not an integer")
		}
		f.SetInt(int64(n))
	default: // string and Secret
		f.SetString(raw)
	}
	return nil
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

// resolve fills the defaults that depend on other variables and checks the
// values that every command relies on.
func (c *Config) resolve() error {
	api, err := connector.ParseAPI(c.DefenderAPI)
	if err != nil {
		return invalid("DEFENDER_API", "%q is not graph or mde", c.DefenderAPI)
	}
	c.API = api
	cloud, err := connector.CloudByName(c.DefenderCloud)
	if err != nil {
		return invalid("DEFENDER_CLOUD", "%q is not one of public, gcc, gcc-high, dod", c.DefenderCloud)
	}
	if c.DefenderAPIURL == "" {
		c.DefenderAPIURL = cloud.APIURL(api)
	}
	if c.DefenderScope == "" {
		c.DefenderScope = cloud.Scope(api)
	}
	if c.DefenderRateLimits == "" {
		c.DefenderRateLimits = api.DefaultRateLimits()
	}
	if c.AzureAuthorityHost == "" {
		c.AzureAuthorityHost = cloud.AuthorityHost
	}
	if err := httpsURL(c.DefenderAPIURL); err != nil {
		return invalid("DEFENDER_API_URL", "%v", err)
	}
	if err := httpsURL(c.AzureAuthorityHost); err != nil {
		return invalid("AZURE_AUTHORITY_HOST", "%v", err)
	}
	if c.RateLimits, err = connector.ParseLimits(c.DefenderRateLimits); err != nil {
		return invalid("DEFENDER_RATE_LIMITS", "%v", err)
	}
	positive := []struct {
		key string
		d   time.Duration
	}{
		{"ACK_WAIT", c.AckWait},
		{"SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"DEFENDER_TIMEOUT", c.DefenderTimeout},
		{"RETRY_INITIAL_INTERVAL", c.RetryInitialInterval},
		{"RETRY_MAX_INTERVAL", c.RetryMaxInterval},
		{"RETRY_MAX_ELAPSED", c.RetryMaxElapsed},
		{"EXEC_TIMEOUT", c.ExecTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return invalid(p.key, "must be more than 0")
		}
	}
	if c.AckWait < time.Second {
		return invalid("ACK_WAIT", "must be at least 1s")
	}
	if c.RetryMaxInterval < c.RetryInitialInterval {
		return invalid("RETRY_MAX_INTERVAL", "must not be shorter than RETRY_INITIAL_INTERVAL")
	}
	if c.CacheTTL < 0 {
		return invalid("CACHE_TTL", "must not be negative")
	}
	if c.CacheTTL > 0 && c.CacheTTL < time.Second {
		return invalid("CACHE_TTL", "must be 0 (off) or at least 1s")
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		return invalid("CONCURRENCY", "must be between 1 and %d", MaxConcurrency)
	}
	switch c.QuotaScope {
	case "shared", "process":
	default:
		return invalid("QUOTA_SCOPE", "%q is not shared or process", c.QuotaScope)
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > MaxStreamReplicas {
		return invalid("STREAM_REPLICAS", "must be between 1 and %d", MaxStreamReplicas)
	}
	if c.MaxDeliver < 1 {
		return invalid("MAX_DELIVER", "must be at least 1")
	}
	names := []struct{ key, val string }{
		{"REQUEST_STREAM", c.RequestStream},
		{"RESULT_STREAM", c.ResultStream},
		{"CONSUMER_NAME", c.ConsumerName},
	}
	for _, n := range names {
		if !validName(n.val) {
			return invalid(n.key, "%q is not a valid JetStream name (letters, digits, - and _)", n.val)
		}
	}
	subjects := []struct{ key, val string }{
		{"REQUEST_SUBJECT", c.RequestSubject},
		{"SUCCESS_SUBJECT", c.SuccessSubject},
		{"FAILURE_SUBJECT", c.FailureSubject},
	}
	for _, s := range subjects {
		if !validSubject(s.val) {
			return invalid(s.key, "%q is not a valid literal subject", s.val)
		}
	}
	if c.SuccessSubject == c.FailureSubject {
		return invalid("FAILURE_SUBJECT", "must differ from SUCCESS_SUBJECT")
	}
	if c.RequestSubject == c.SuccessSubject || c.RequestSubject == c.FailureSubject {
		return invalid("REQUEST_SUBJECT", "must differ from the result subjects")
	}
	if c.RequestStream == c.ResultStream {
		return invalid("RESULT_STREAM", "must differ from REQUEST_STREAM")
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return invalid("LOG_FORMAT", "%q is not text or json", c.LogFormat)
	}
	if err := c.Level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return invalid("LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if (c.NATSTLSCertFile == "") != (c.NATSTLSKeyFile == "") {
		return invalid("NATS_TLS_CERT_FILE", "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE go together")
	}
	if err := listenAddress(c.HTTPListen); err != nil {
		return invalid("HTTP_LISTEN", "%v", err)
	}
	if c.NATSPassword != "" && c.NATSUser == "" {
		return invalid("NATS_PASSWORD", "needs NATS_USER")
	}
	return nil
}

// httpsURL checks an https URL; its errors never show the URL's
// credentials.
func httpsURL(raw string) error {
	shown := redact.URLs(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", shown)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q must be an https URL", shown)
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	return nil
}

// listenAddress checks a host:port to listen on; empty is valid (off).
func listenAddress(s string) error {
	if s == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (127.0.0.1:8080, :8080, [::1]:8080)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	if strings.ContainsAny(host, " /@") {
		return fmt.Errorf("%q: %q is not a host name or address", s, host)
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n*>") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}

// MaxStreamReplicas is the largest replica count JetStream allows.
const MaxStreamReplicas = 5

// DuplicateWindow is the result stream's duplicate window: long enough that
// a result published again by any later delivery of the same request is
// dropped (the longer of 2 minutes and ACK_WAIT × MAX_DELIVER, plus the retry
// budget of the delivery that publishes last).
func (c *Config) DuplicateWindow() time.Duration {
	w := c.AckWait*time.Duration(c.MaxDeliver) + c.RetryMaxElapsed
	return max(w, 2*time.Minute)
}

// Credential is the connector's view of the AZURE_* variables.
func (c *Config) Credential() connector.CredentialConfig {
	return connector.CredentialConfig{
		TenantID:            c.AzureTenantID,
		ClientID:            c.AzureClientID,
		ClientSecret:        c.AzureClientSecret.Reveal(),
		CertificatePath:     c.AzureClientCertificatePath,
		CertificatePassword: c.AzureClientCertificatePassword.Reveal(),
		FederatedTokenFile:  c.AzureFederatedTokenFile,
		ManagedIdentity:     c.DefenderManagedIdentity,
		AuthorityHost:       c.AzureAuthorityHost,
	}
}
