package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	strictjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// The values sets CI renders: each a document given with -f, over
// minimalValues where it does not say everything an installation needs.
const (
	// minimalValues are what every installation gives: the app
	// registration and the service's own NATS user.
	minimalValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
nats:
  creds: {secretName: alert-domains-nats}
`
	clientSecretValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  secretName: defender-app
  clientSecret: {enabled: true, key: secret}
nats:
  creds: {secretName: alert-domains-nats}
`
	certificateValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  secretName: defender-cert
  clientSecret: {enabled: false}
  certificate: {enabled: true, key: app.pfx, passwordKey: app.pfx.password}
nats:
  creds: {secretName: alert-domains-nats}
`
	workloadIdentityValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  clientSecret: {enabled: false}
  workloadIdentity: {enabled: true}
nats:
  creds: {secretName: ""}
  nkey: {secretName: alert-domains-nats, key: seed.nk}
`
	tenantsFileValues = `
azure:
  tenantId: ""
  clientId: ""
  clientSecret: {enabled: false}
tenantsFile:
  secretName: soc-tenants
  key: tenants.yml
  secrets: [contoso-app, fabrikam.app]
nats:
  creds: {secretName: ""}
  nkey: {secretName: alert-domains-nats}
`
	otelValues = `
otel:
  endpoint: http://otel-collector.observability.svc.cluster.local:4317
  protocol: grpc
  headers: {secretName: otel-auth, key: headers}
  serviceName: soc-alert-domains
  resourceAttributes: {deployment.environment.name: prod, service.namespace: soc}
  sampler: parentbased_traceidratio
  samplerArg: "0.25"
networkPolicy:
  egress:
    otel:
      to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}}]
defender:
  api: mde
`
	kedaValues = `
keda:
  enabled: true
  minReplicaCount: 2
  maxReplicaCount: 5
  lagThreshold: 250
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
dashboard:
  configMap: {enabled: true, annotations: {grafana_folder: SOC}}
nats:
  creds: {secretName: alert-domains-nats}
  tls: {secretName: nats-client-tls, ca: ca.crt, cert: tls.crt, key: tls.key}
topology:
  requestStream: SIEM_REQUESTS
  consumerName: soc-domains
`
)

// valueSets are the complete values sets the tests over all of them
// render: each the documents given with -f, in order.
func valueSets(t *testing.T) map[string][]string {
	t.Helper()
	return map[string][]string{
		"minimal":           {minimalValues},
		"client secret":     {clientSecretValues},
		"certificate":       {certificateValues},
		"workload identity": {workloadIdentityValues},
		"tenants file":      {tenantsFileValues},
		"keda":              {minimalValues, kedaValues},
		"otel":              {minimalValues, otelValues},
		"example":           {exampleValues(t)},
	}
}

func TestLint(t *testing.T) {
	sets := valueSets(t)
	sets["defaults"] = nil
	for name, docs := range sets {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = namespace
			res := lint.Run([]string{chartDir}, values(t, docs...))
			for _, err := range res.Errors {
				t.Error(err)
			}
			for _, m := range res.Messages {
				// The only finding allowed is the missing icon.
				if m.Severity > support.InfoSev {
					t.Error(m)
				}
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("%d charts linted, want 1", res.TotalChartsLinted)
			}
		})
	}
	// Lint renders in lint mode, where fail is silent (TestCredentialMustBeExactlyOne
	// renders for real); it does check the values against the schema.
	t.Run("finds values outside the schema", func(t *testing.T) {
		lint := action.NewLint()
		lint.Namespace = namespace
		res := lint.Run([]string{chartDir}, values(t, "defender: {quotaScope: cluster}\n"))
		if !action.HasWarningsOrErrors(res) || !strings.Contains(fmt.Sprint(res.Messages), "quotaScope") {
			t.Errorf("lint with quotaScope cluster: %v %v", res.Messages, res.Errors)
		}
	})
}

func TestLintRefusesValuesOutsideTheSchema(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown top-level key": "replicas: 3\n",
		"unknown quota scope":   "defender: {quotaScope: cluster}\n",
		"http api url":          "defender: {apiUrl: 'http://api.example'}\n",
		"no servers":            "nats: {servers: []}\n",
		"bad duration":          "processing: {ackWait: 30}\n",
		// The service refuses these at start (the pods would crash-loop).
		"concurrency above the service's bound": "processing: {concurrency: 2000}\n",
		"ack wait under a second":               "processing: {ackWait: 500ms}\n",
		"ack wait of zero":                      "processing: {ackWait: 0s}\n",
		"cache TTL under a second":              "processing: {cacheTTL: 500ms}\n",
		"string replicas":                       "topology: {streamReplicas: three}\n",
		"image tag as digest":                   "image: {digest: '1.2.3'}\n",
		"short digest":                          "image: {digest: 'sha256:abc'}\n",
		"unknown api":                           "defender: {api: xdr}\n",
		"azure keys":                            "azure: {keys: {tenantId: tenant-id}}\n",
		"secret name as path":                   "tenantsFile: {secrets: [../etc]}\n",
		"peer of no kind":                       "networkPolicy: {metrics: {from: [{}]}}\n",
		"otel without scheme":                   "otel: {endpoint: 'collector:4318'}\n",
		"unknown sampler":                       "otel: {sampler: sometimes}\n",
		"unknown protocol":                      "otel: {protocol: http/json}\n",
		"comma in an attribute":                 "otel: {resourceAttributes: {team: 'a,b'}}\n",
		// OTEL_RESOURCE_ATTRIBUTES values are percent-decoded: the SDK
		// reports a bare % as an error at every start.
		"bare percent in an attribute": "otel: {resourceAttributes: {share: '50%'}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := template(t, doc)
			if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Fatalf("template with %q: %v, want a schema error", doc, err)
			}
		})
	}
}

func TestCredentialMustBeExactlyOne(t *testing.T) {
	const nats = "nats: {creds: {secretName: nats-creds}}\n"
	for name, tc := range map[string]struct{ doc, want string }{
		"none": {`
azure: {clientSecret: {enabled: false}}
`, "azure: no credential is enabled; enable exactly one of azure.clientSecret, azure.certificate, azure.workloadIdentity"},
		"client secret and workload identity": {`
azure: {clientId: x, workloadIdentity: {enabled: true}}
`, "azure: 2 credentials are enabled (clientSecret, workloadIdentity); enable exactly one"},
		"all three": {`
azure: {clientId: x, certificate: {enabled: true}, workloadIdentity: {enabled: true}}
`, "azure: 3 credentials are enabled (certificate, clientSecret, workloadIdentity)"},
		"workload identity without client ID": {`
azure: {clientSecret: {enabled: false}, workloadIdentity: {enabled: true}}
`, "azure.workloadIdentity needs azure.clientId"},
		"keda min above max": {`
azure: {tenantId: tid, clientId: cid}
keda: {enabled: true, minReplicaCount: 5, maxReplicaCount: 2}
`, "keda.minReplicaCount (5) is above keda.maxReplicaCount (2)"},
		"client secret without the app registration": {`
azure: {tenantId: x}
`, "azure.clientSecret needs azure.tenantId and azure.clientId"},
		"certificate without the app registration": {`
azure: {clientSecret: {enabled: false}, certificate: {enabled: true}}
`, "azure.certificate needs azure.tenantId and azure.clientId"},
		"tenants file and client secret": {`
tenantsFile: {configMapName: tenants}
`, "azure: 2 credentials are enabled (clientSecret, tenantsFile)"},
		"tenants file from a ConfigMap and a Secret": {`
azure: {clientSecret: {enabled: false}}
tenantsFile: {configMapName: tenants, secretName: tenants}
`, "tenantsFile: set configMapName or secretName, not both"},
		"tenants file and an app registration": {`
azure: {clientId: x, clientSecret: {enabled: false}}
tenantsFile: {configMapName: tenants}
`, "tenantsFile: unset azure.tenantId and azure.clientId"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := template(t, nats, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("template: %v\nwant an error with %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	r := render(t, minimalValues)
	want := []string{
		"ConfigMap/alert-domains-tenants", "Deployment/alert-domains", "NetworkPolicy/alert-domains",
		"PodDisruptionBudget/alert-domains", "Service/alert-domains", "ServiceAccount/alert-domains",
	}
	if !slices.Equal(r.objects, want) {
		t.Errorf("objects %v, want %v", r.objects, want)
	}
	d := r.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	c := r.container(t)
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args %q, want [serve]", c.Args)
	}
	if c.Image != "alert-domains:0.1.0" {
		t.Errorf("image %q, want the chart's appVersion as the tag", c.Image)
	}
	env := r.env(t)
	for name, want := range map[string]string{
		"NATS_URL": "nats://nats-0.nats-headless.nats.svc.cluster.local:4222," +
			"nats://nats-1.nats-headless.nats.svc.cluster.local:4222," +
			"nats://nats-2.nats-headless.nats.svc.cluster.local:4222",
		"NATS_CREDS_FILE":  "/etc/alert-domains/nats-credential/nats.creds",
		"STREAM_REPLICAS":  "3",
		"QUOTA_SCOPE":      "shared",
		"CONSUMER_NAME":    "alert-domains",
		"REQUEST_STREAM":   "DEFENDER_ALERT_DOMAIN_REQUESTS",
		"PROVISION":        "true",
		"SHUTDOWN_TIMEOUT": "25s",
		"HTTP_LISTEN":      "0.0.0.0:8080",
		"LOG_FORMAT":       "json",
		"DEFENDER_API":     "graph",
		"DEFENDER_CLOUD":   "public",
		"TENANTS_FILE":     "/etc/alert-domains/tenants/tenants.yaml",
	} {
		expectValue(t, env, name, want)
	}
	// The app registration is in the tenants file; no AZURE_* variable may
	// be set beside it, and none is needed.
	for _, name := range []string{
		"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "DEFENDER_API_URL", "DEFENDER_RATE_LIMITS", "COALESCE_SCOPE",
		"OTEL_EXPORTER_OTLP_ENDPOINT",
	} {
		if _, ok := env[name]; ok {
			t.Errorf("%s set by default", name)
		}
	}
	tenant := chartTenant(t, r)
	if tenant.Name != "default" || tenant.TenantID != "6f1c2b9e-0000-4000-8000-000000000001" ||
		tenant.ClientID != "0a3e5f7d-0000-4000-8000-000000000002" {
		t.Errorf("tenant %+v, want default with the app registration of the values", tenant)
	}
	vol, key := mountedSecretFile(t, r, tenant.ClientSecretFile)
	if vol.Secret.SecretName != "alert-domains-azure" || key != "client-secret" {
		t.Errorf("clientSecretFile %s is key %q of Secret %q, want client-secret of alert-domains-azure", tenant.ClientSecretFile, key, vol.Secret.SecretName)
	}
	if _, ok := d.Spec.Template.Labels["azure.workload.identity/use"]; ok {
		t.Error("workload identity label without workload identity")
	}
	if r.serviceAccount.Name != d.Spec.Template.Spec.ServiceAccountName {
		t.Errorf("pods run as %q, the chart creates %q", d.Spec.Template.Spec.ServiceAccountName, r.serviceAccount.Name)
	}
	expectSecure(t, r)
	expectGracePeriod(t, r)
	expectSelectors(t, r)
	if mu := r.pdb.Spec.MaxUnavailable; mu == nil || *mu != intstr.FromInt32(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", mu)
	}
}

func TestClientSecret(t *testing.T) {
	r := render(t, clientSecretValues)
	tenant := chartTenant(t, r)
	if tenant.TenantID != "6f1c2b9e-0000-4000-8000-000000000001" || tenant.ClientID != "0a3e5f7d-0000-4000-8000-000000000002" {
		t.Errorf("tenant %+v, want the app registration of the values", tenant)
	}
	vol, key := mountedSecretFile(t, r, tenant.ClientSecretFile)
	if vol.Secret.SecretName != "defender-app" || key != "secret" {
		t.Errorf("clientSecretFile %s is key %q of Secret %q, want secret of defender-app", tenant.ClientSecretFile, key, vol.Secret.SecretName)
	}
	if n := len(vol.Secret.Items); n != 1 {
		t.Errorf("%d keys of the Secret mounted, want the client secret alone", n)
	}
	if tenant.CertificateFile != "" || tenant.FederatedTokenFile != "" || tenant.ClientSecretEnv != "" {
		t.Errorf("tenant %+v has a second credential", tenant)
	}
}

func TestCertificate(t *testing.T) {
	r := render(t, certificateValues)
	env := r.env(t)
	for _, name := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s set with a certificate", name)
		}
	}
	tenant := chartTenant(t, r)
	if tenant.ClientSecretFile != "" {
		t.Errorf("tenant %+v has a client secret beside its certificate", tenant)
	}
	for file, want := range map[string]string{tenant.CertificateFile: "app.pfx", tenant.CertificatePasswordFile: "app.pfx.password"} {
		vol, key := mountedSecretFile(t, r, file)
		if vol.Secret.SecretName != "defender-cert" || key != want {
			t.Errorf("%s is key %q of Secret %q, want %s of defender-cert", file, key, vol.Secret.SecretName, want)
		}
	}
	// Without a password key, no password file.
	r = render(t, certificateValues, "azure: {certificate: {passwordKey: ''}}\n")
	if tenant := chartTenant(t, r); tenant.CertificatePasswordFile != "" || tenant.CertificateFile == "" {
		t.Errorf("tenant %+v, want a certificate without a password file", tenant)
	}
}

func TestWorkloadIdentity(t *testing.T) {
	r := render(t, workloadIdentityValues)
	pod := r.deployment.Spec.Template
	if got := pod.Labels["azure.workload.identity/use"]; got != "true" {
		t.Errorf("pod label azure.workload.identity/use = %q, want \"true\"", got)
	}
	sa := r.serviceAccount
	if pod.Spec.ServiceAccountName != sa.Name {
		t.Errorf("pods run as %q, the annotated account is %q", pod.Spec.ServiceAccountName, sa.Name)
	}
	if got := sa.Annotations["azure.workload.identity/client-id"]; got != "0a3e5f7d-0000-4000-8000-000000000002" {
		t.Errorf("service account client-id annotation %q", got)
	}
	if got := sa.Annotations["azure.workload.identity/tenant-id"]; got != "6f1c2b9e-0000-4000-8000-000000000001" {
		t.Errorf("service account tenant-id annotation %q", got)
	}
	env := r.env(t)
	// The webhook injects the token file; the chart sets no secret at all.
	// The AZURE_* variables it injects would clash with a tenants file.
	for _, name := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "TENANTS_FILE"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s set with workload identity", name)
		}
	}
	for name, e := range env {
		if e.ValueFrom != nil {
			t.Errorf("%s read from %v with workload identity", name, e.ValueFrom)
		}
	}
	if len(r.configMaps) != 0 {
		t.Errorf("ConfigMaps %v with workload identity", r.objects)
	}
	expectValue(t, env, "AZURE_CLIENT_ID", "0a3e5f7d-0000-4000-8000-000000000002")
	expectValue(t, env, "AZURE_TENANT_ID", "6f1c2b9e-0000-4000-8000-000000000001")
	expectSecure(t, r)
}

func TestKEDAServiceMonitorDashboardAndNATSSecrets(t *testing.T) {
	r := render(t, minimalValues, kedaValues)
	want := []string{
		"ConfigMap/alert-domains-dashboard", "ConfigMap/alert-domains-tenants", "Deployment/alert-domains",
		"NetworkPolicy/alert-domains", "PodDisruptionBudget/alert-domains", "ScaledObject/alert-domains",
		"Service/alert-domains", "ServiceAccount/alert-domains", "ServiceMonitor/alert-domains",
	}
	if !slices.Equal(r.objects, want) {
		t.Errorf("objects %v, want %v", r.objects, want)
	}
	// KEDA owns the replica count: the Deployment sets none.
	if r.deployment.Spec.Replicas != nil {
		t.Errorf("Deployment replicas %d with KEDA", *r.deployment.Spec.Replicas)
	}
	so := r.scaledObject
	ref := so.Spec.ScaleTargetRef
	if ref.Name != r.deployment.Name || ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" {
		t.Errorf("scaleTargetRef %+v, want the Deployment %s", ref, r.deployment.Name)
	}
	if p := so.Spec.MinReplicaCount; p == nil || *p != 2 {
		t.Errorf("minReplicaCount %v, want 2", p)
	}
	if p := so.Spec.MaxReplicaCount; p == nil || *p != 5 {
		t.Errorf("maxReplicaCount %v, want 5", p)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("triggers %+v, want one nats-jetstream", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	for k := range md {
		if _, known := natsJetStreamMetadata[k]; !known {
			t.Errorf("trigger metadata %q is not one the nats-jetstream scaler reads", k)
		}
	}
	for k, required := range natsJetStreamMetadata {
		if required && md[k] == "" {
			t.Errorf("trigger metadata %q missing", k)
		}
	}
	if md["account"] != "$G" {
		t.Errorf("account %q, want $G", md["account"])
	}
	for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
		if _, err := strconv.ParseInt(md[k], 10, 64); err != nil {
			t.Errorf("%s %q: %v", k, md[k], err)
		}
	}
	if _, err := strconv.ParseBool(md["useHttps"]); err != nil {
		t.Errorf("useHttps %q: %v", md["useHttps"], err)
	}
	if md["lagThreshold"] != "250" {
		t.Errorf("lagThreshold %q, want 250", md["lagThreshold"])
	}
	// KEDA watches the very stream and consumer the replicas share.
	env := r.env(t)
	if md["stream"] != env["REQUEST_STREAM"].Value || md["stream"] != "SIEM_REQUESTS" {
		t.Errorf("trigger stream %q, REQUEST_STREAM %q", md["stream"], env["REQUEST_STREAM"].Value)
	}
	if md["consumer"] != env["CONSUMER_NAME"].Value || md["consumer"] != "soc-domains" {
		t.Errorf("trigger consumer %q, CONSUMER_NAME %q", md["consumer"], env["CONSUMER_NAME"].Value)
	}

	// The ServiceMonitor scrapes the Service's http port at /metrics.
	sm := r.serviceMonitor
	if sm.Metadata.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.Metadata.Labels)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(r.service.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sel, r.service.Labels)
	}
	if ns := sm.Spec.NamespaceSelector; ns == nil || !slices.Equal(ns.MatchNames, []string{namespace}) {
		t.Errorf("ServiceMonitor namespaces %+v, want [%s]", ns, namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if !slices.ContainsFunc(r.service.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
		t.Errorf("ServiceMonitor port %q is not a port of the Service %+v", ep.Port, r.service.Spec.Ports)
	}
	if !slices.Contains(serviceRoutes(t), ep.Path) {
		t.Errorf("ServiceMonitor path %q is not served (routes %v)", ep.Path, serviceRoutes(t))
	}

	// The dashboard ConfigMap carries the chart's dashboard, labelled for Grafana's sidecar.
	cm := r.configMap(t, "alert-domains-dashboard")
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "SOC" {
		t.Errorf("dashboard ConfigMap labels %v annotations %v", cm.Labels, cm.Annotations)
	}
	file, err := os.ReadFile(path.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["alert-domains.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(file)) {
		t.Error("dashboard ConfigMap differs from files/dashboard.json")
	}
	if !json.Valid(file) {
		t.Error("files/dashboard.json is not JSON")
	}

	// NATS credentials and TLS files are mounted where the variables point.
	for name, key := range map[string]string{
		"NATS_CREDS_FILE": "nats.creds", "NATS_TLS_CA_FILE": "ca.crt",
		"NATS_TLS_CERT_FILE": "tls.crt", "NATS_TLS_KEY_FILE": "tls.key",
	} {
		vol, item := mountedSecretFile(t, r, env[name].Value)
		if item != key {
			t.Errorf("%s is key %q of Secret %s, want %q", name, item, vol.Secret.SecretName, key)
		}
	}
	expectSecure(t, r)
	expectGracePeriod(t, r)
}

// TestProbesMatchTheService checks the probes and the port against the
// routes the service registers (cmd/alert-domains) and HTTP_LISTEN.
func TestProbesMatchTheService(t *testing.T) {
	routes := serviceRoutes(t)
	for _, doc := range []string{"", "http: {port: 9090}\n"} {
		r := render(t, minimalValues, doc)
		c := r.container(t)
		listen := r.env(t)["HTTP_LISTEN"].Value
		host, port, ok := strings.Cut(listen, ":")
		// The image's and the service's own defaults listen on loopback
		// or any address; in a pod the kubelet probes the pod's IP.
		if !ok || host != "0.0.0.0" {
			t.Errorf("HTTP_LISTEN %q, want 0.0.0.0:<port>", listen)
		}
		var httpPort int32
		for _, p := range c.Ports {
			if p.Name == "http" {
				httpPort = p.ContainerPort
			}
		}
		if strconv.Itoa(int(httpPort)) != port {
			t.Errorf("container port http %d, HTTP_LISTEN %q", httpPort, listen)
		}
		for name, probe := range map[string]struct {
			p    *corev1.Probe
			path string
		}{"startup": {c.StartupProbe, "/livez"}, "liveness": {c.LivenessProbe, "/livez"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
			if probe.p == nil || probe.p.HTTPGet == nil {
				t.Errorf("%s probe %+v, want an HTTP GET", name, probe.p)
				continue
			}
			g := probe.p.HTTPGet
			// /livez answers while the process runs; /readyz follows NATS.
			// A liveness probe on /readyz would restart replicas whenever a
			// NATS node is lost.
			if g.Path != probe.path || !slices.Contains(routes, g.Path) {
				t.Errorf("%s probe path %q, want %q among the service's routes %v", name, g.Path, probe.path, routes)
			}
			if g.Port != intstr.FromString("http") && g.Port != intstr.FromInt32(httpPort) {
				t.Errorf("%s probe port %v, want the http port %d", name, g.Port, httpPort)
			}
		}
		// The service serves HTTP once provisioned, which waits up to 45 s
		// for a NATS cluster electing its leaders.
		if p := c.StartupProbe; p == nil || p.PeriodSeconds*p.FailureThreshold < 60 {
			t.Errorf("startup probe %+v, want at least 60 s before liveness counts", p)
		}
		if svc := r.service.Spec.Ports; len(svc) != 1 || svc[0].TargetPort != intstr.FromString("http") {
			t.Errorf("Service ports %+v, want one to the http port", svc)
		}
	}
}

// TestEnvIsTheContracts checks that every variable the chart sets is one
// the service reads, as the contract names them.
func TestEnvIsTheContracts(t *testing.T) {
	contract := contractVariables(t)
	sets := valueSets(t)
	sets["endpoints"] = []string{minimalValues, "defender: {apiUrl: 'https://eu.api.security.microsoft.com', scope: x, rateLimits: 150/1m}\nazure: {authorityHost: 'https://login.example/'}\n"}
	for _, docs := range sets {
		for name := range render(t, docs...).env(t) {
			if !contract[name] {
				t.Errorf("the chart sets %s, which the contract does not name", name)
			}
		}
	}
}

// contractVariables are the environment variables the contract names.
func contractVariables(t *testing.T) map[string]bool {
	t.Helper()
	const file = "../../shared/CONTRACT.md"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the contract (../shared/CONTRACT.md beside the repository): %v", err)
	}
	vars := make(map[string]bool)
	for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9_]+)`").FindAllStringSubmatch(string(b), -1) {
		vars[m[1]] = true
	}
	if !vars["NATS_URL"] || !vars["STREAM_REPLICAS"] || !vars["QUOTA_SCOPE"] {
		t.Fatalf("%s names no NATS_URL, STREAM_REPLICAS or QUOTA_SCOPE: %v", file, vars)
	}
	return vars
}

func expectValue(t *testing.T, env map[string]corev1.EnvVar, name, want string) {
	t.Helper()
	if got := env[name]; got.Value != want || got.ValueFrom != nil {
		t.Errorf("%s = %q (from %v), want %q", name, got.Value, got.ValueFrom, want)
	}
}

func expectSecretRef(t *testing.T, env map[string]corev1.EnvVar, name, secret, key string) {
	t.Helper()
	e, ok := env[name]
	if !ok {
		t.Errorf("%s not set", name)
		return
	}
	if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s = %q (from %v), want key %s of Secret %s", name, e.Value, e.ValueFrom, key, secret)
		return
	}
	ref := e.ValueFrom.SecretKeyRef
	if ref.Name != secret || ref.Key != key {
		t.Errorf("%s from key %s of Secret %s, want key %s of Secret %s", name, ref.Key, ref.Name, key, secret)
	}
}

// mountedSecretFile finds the read-only secret volume mounted where file
// lies, and the Secret's key that is file.
func mountedSecretFile(t *testing.T, r *rendered, file string) (*corev1.Volume, string) {
	t.Helper()
	vol, key := mountedFile(t, r, file)
	if vol.Secret == nil {
		t.Fatalf("%s: volume %s is not a Secret", file, vol.Name)
	}
	return vol, key
}

// mountedFile finds the read-only Secret or ConfigMap volume mounted where
// file lies, and the key that is file: one of the volume's items, or any
// key when it mounts them all.
func mountedFile(t *testing.T, r *rendered, file string) (*corev1.Volume, string) {
	t.Helper()
	if file == "" {
		t.Fatal("no file")
	}
	c := r.container(t)
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, m.MountPath+"/")
		if !ok {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s is mounted writable", m.MountPath)
		}
		if m.SubPath != "" {
			t.Errorf("%s is mounted with subPath %s: an update of its source never reaches it", m.MountPath, m.SubPath)
		}
		for i, v := range r.deployment.Spec.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				items = v.Secret.Items
			case v.ConfigMap != nil:
				items = v.ConfigMap.Items
			default:
				t.Fatalf("%s: volume %s is neither a Secret nor a ConfigMap", file, v.Name)
			}
			if len(items) == 0 && !strings.Contains(rel, "/") {
				return &r.deployment.Spec.Template.Spec.Volumes[i], rel
			}
			for _, it := range items {
				if it.Path == rel {
					return &r.deployment.Spec.Template.Spec.Volumes[i], it.Key
				}
			}
			t.Fatalf("%s: volume %s mounts no file %s (%+v)", file, v.Name, rel, items)
		}
		t.Fatalf("%s: mount %s has no volume", file, m.Name)
	}
	t.Fatalf("%s is under no volume mount %+v", file, c.VolumeMounts)
	return nil, ""
}

// configMap is the rendered ConfigMap called name.
func (r *rendered) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range r.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s among %v", name, r.objects)
	return nil
}

// tenant is an entry of a tenants file, with the fields the contract's
// "Tenants" names and no other.
type tenant struct {
	Name                    string `json:"name"`
	TenantID                string `json:"tenantId"`
	ClientID                string `json:"clientId"`
	ClientSecretFile        string `json:"clientSecretFile,omitempty"`
	ClientSecretEnv         string `json:"clientSecretEnv,omitempty"`
	CertificateFile         string `json:"certificateFile,omitempty"`
	CertificatePasswordFile string `json:"certificatePasswordFile,omitempty"`
	FederatedTokenFile      string `json:"federatedTokenFile,omitempty"`
	ManagedIdentity         bool   `json:"managedIdentity,omitempty"`
	API                     string `json:"api,omitempty"`
	Cloud                   string `json:"cloud,omitempty"`
	APIURL                  string `json:"apiUrl,omitempty"`
	Scope                   string `json:"scope,omitempty"`
	AuthorityHost           string `json:"authorityHost,omitempty"`
	RateLimits              string `json:"rateLimits,omitempty"`
}

// chartTenant is the one tenant of the tenants file the chart wrote, read
// strictly from the file TENANTS_FILE names in its mounted ConfigMap.
func chartTenant(t *testing.T, r *rendered) tenant {
	t.Helper()
	file := r.env(t)["TENANTS_FILE"].Value
	vol, key := mountedFile(t, r, file)
	if vol.ConfigMap == nil {
		t.Fatalf("TENANTS_FILE %s: volume %s is not a ConfigMap", file, vol.Name)
	}
	data, ok := r.configMap(t, vol.ConfigMap.Name).Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", vol.ConfigMap.Name, key)
	}
	js, err := yaml.YAMLToJSON([]byte(data))
	if err != nil {
		t.Fatalf("tenants file: %v\n%s", err, data)
	}
	var f struct {
		Tenants []tenant `json:"tenants"`
	}
	strict, err := strictjson.UnmarshalStrict(js, &f)
	if err != nil || len(strict) > 0 {
		t.Fatalf("tenants file: %v %v\n%s", err, strict, data)
	}
	if len(f.Tenants) != 1 {
		t.Fatalf("tenants file with %d tenants, want 1:\n%s", len(f.Tenants), data)
	}
	return f.Tenants[0]
}

// expectSecure checks the non-root, read-only, capability-free security context.
func expectSecure(t *testing.T, r *rendered) {
	t.Helper()
	pod := r.deployment.Spec.Template.Spec
	ps := pod.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
		ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", ps)
	}
	sc := r.container(t).SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context %+v", sc)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the Kubernetes API token is mounted; the service never calls the API")
	}
	res := r.container(t).Resources
	if res.Requests.Cpu().IsZero() || res.Requests.Memory().IsZero() || res.Limits.Memory().IsZero() {
		t.Errorf("resources %+v, want CPU and memory requests and a memory limit", res)
	}
	expectRestricted(t, r)
}

// expectGracePeriod checks that Kubernetes waits longer than the service's
// SHUTDOWN_TIMEOUT before it kills a pod.
func expectGracePeriod(t *testing.T, r *rendered) {
	t.Helper()
	st, err := time.ParseDuration(r.env(t)["SHUTDOWN_TIMEOUT"].Value)
	if err != nil {
		t.Fatalf("SHUTDOWN_TIMEOUT: %v", err)
	}
	g := r.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
	if g == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if time.Duration(*g)*time.Second <= st {
		t.Errorf("terminationGracePeriodSeconds %d, SHUTDOWN_TIMEOUT %v: the grace period must be longer", *g, st)
	}
}

// expectSelectors checks that the Deployment, the PodDisruptionBudget and
// the Service select the Deployment's pods.
func expectSelectors(t *testing.T, r *rendered) {
	t.Helper()
	podLabels := labels.Set(r.deployment.Spec.Template.Labels)
	for name, sel := range map[string]*metav1.LabelSelector{
		"Deployment":          r.deployment.Spec.Selector,
		"PodDisruptionBudget": r.pdb.Spec.Selector,
		"Service":             {MatchLabels: r.service.Spec.Selector},
	} {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("%s selector: %v", name, err)
		}
		if s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s selector %v does not select the pods %v", name, s, podLabels)
		}
	}
}

// exampleValues is the example of a production installation the chart ships.
func exampleValues(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(path.Join(chartDir, "examples", "production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDurationsTheServiceTakes: whole durations of at least a second, and a
// cache TTL of 0 (off), reach the service as given.
func TestDurationsTheServiceTakes(t *testing.T) {
	for _, tc := range []struct{ ackWait, cacheTTL string }{{"1h30m", "0"}, {"90s", "2m"}, {"1s", "1s"}} {
		env := render(t, minimalValues, "processing: {ackWait: '"+tc.ackWait+"', cacheTTL: '"+tc.cacheTTL+"'}\n").env(t)
		if env["ACK_WAIT"].Value != tc.ackWait || env["CACHE_TTL"].Value != tc.cacheTTL {
			t.Errorf("ACK_WAIT %q, CACHE_TTL %q; want %s, %s", env["ACK_WAIT"].Value, env["CACHE_TTL"].Value, tc.ackWait, tc.cacheTTL)
		}
	}
}
