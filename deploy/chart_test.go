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
)

// The values sets CI renders: each a document given with -f.
const (
	clientSecretValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  secretName: defender-app
  clientSecret: {enabled: true, key: secret}
`
	certificateValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  secretName: defender-cert
  clientSecret: {enabled: false}
  certificate: {enabled: true, key: app.pfx, passwordKey: app.pfx.password}
`
	workloadIdentityValues = `
azure:
  tenantId: 6f1c2b9e-0000-4000-8000-000000000001
  clientId: 0a3e5f7d-0000-4000-8000-000000000002
  clientSecret: {enabled: false}
  workloadIdentity: {enabled: true}
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

func TestLint(t *testing.T) {
	for name, doc := range map[string]string{
		"defaults": "", "client secret": clientSecretValues, "certificate": certificateValues,
		"workload identity": workloadIdentityValues, "keda": kedaValues,
	} {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = namespace
			res := lint.Run([]string{chartDir}, values(t, doc))
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
		"string replicas":       "topology: {streamReplicas: three}\n",
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
keda: {enabled: true, minReplicaCount: 5, maxReplicaCount: 2}
`, "keda.minReplicaCount (5) is above keda.maxReplicaCount (2)"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := template(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("template: %v\nwant an error with %q", err, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	r := render(t, "")
	want := []string{
		"Deployment/alert-domains", "PodDisruptionBudget/alert-domains",
		"Service/alert-domains", "ServiceAccount/alert-domains",
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
	env := r.env(t)
	for name, want := range map[string]string{
		"NATS_URL": "nats://nats-0.nats-headless.nats.svc.cluster.local:4222," +
			"nats://nats-1.nats-headless.nats.svc.cluster.local:4222," +
			"nats://nats-2.nats-headless.nats.svc.cluster.local:4222",
		"STREAM_REPLICAS":      "3",
		"QUOTA_SCOPE":          "shared",
		"DEFENDER_RATE_LIMITS": "100/1m,1500/1h",
		"CONSUMER_NAME":        "alert-domains",
		"REQUEST_STREAM":       "DEFENDER_ALERT_DOMAIN_REQUESTS",
		"PROVISION":            "true",
		"SHUTDOWN_TIMEOUT":     "25s",
		"HTTP_LISTEN":          "0.0.0.0:8080",
		"LOG_FORMAT":           "json",
		"DEFENDER_CLOUD":       "public",
	} {
		if got := env[name]; got.Value != want || got.ValueFrom != nil {
			t.Errorf("%s = %q (from %v), want %q", name, got.Value, got.ValueFrom, want)
		}
	}
	// The app registration comes from the Secret <fullname>-azure.
	for name, key := range map[string]string{
		"AZURE_TENANT_ID": "tenant-id", "AZURE_CLIENT_ID": "client-id", "AZURE_CLIENT_SECRET": "client-secret",
	} {
		expectSecretRef(t, env, name, "alert-domains-azure", key)
	}
	for _, name := range []string{"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "NATS_CREDS_FILE", "DEFENDER_API_URL"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s set by default", name)
		}
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
	env := r.env(t)
	expectSecretRef(t, env, "AZURE_CLIENT_SECRET", "defender-app", "secret")
	expectValue(t, env, "AZURE_TENANT_ID", "6f1c2b9e-0000-4000-8000-000000000001")
	expectValue(t, env, "AZURE_CLIENT_ID", "0a3e5f7d-0000-4000-8000-000000000002")
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			t.Errorf("secret volume %s mounted for a client secret", v.Name)
		}
	}
}

func TestCertificate(t *testing.T) {
	r := render(t, certificateValues)
	env := r.env(t)
	if _, ok := env["AZURE_CLIENT_SECRET"]; ok {
		t.Error("AZURE_CLIENT_SECRET set with a certificate")
	}
	expectSecretRef(t, env, "AZURE_CLIENT_CERTIFICATE_PASSWORD", "defender-cert", "app.pfx.password")
	certPath := env["AZURE_CLIENT_CERTIFICATE_PATH"].Value
	vol, item := mountedSecretFile(t, r, certPath)
	if vol.Secret.SecretName != "defender-cert" || item != "app.pfx" {
		t.Errorf("certificate %s is key %q of Secret %q, want app.pfx of defender-cert", certPath, item, vol.Secret.SecretName)
	}
	// Only the certificate is mounted, not the password beside it.
	if n := len(vol.Secret.Items); n != 1 {
		t.Errorf("%d keys of the Secret mounted, want 1", n)
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
	for _, name := range []string{"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s set with workload identity", name)
		}
	}
	for name, e := range env {
		if e.ValueFrom != nil {
			t.Errorf("%s read from %v with workload identity", name, e.ValueFrom)
		}
	}
	expectValue(t, env, "AZURE_CLIENT_ID", "0a3e5f7d-0000-4000-8000-000000000002")
	expectSecure(t, r)
}

func TestKEDAServiceMonitorDashboardAndNATSSecrets(t *testing.T) {
	r := render(t, kedaValues)
	want := []string{
		"ConfigMap/alert-domains-dashboard", "Deployment/alert-domains", "PodDisruptionBudget/alert-domains",
		"ScaledObject/alert-domains", "Service/alert-domains", "ServiceAccount/alert-domains", "ServiceMonitor/alert-domains",
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
	cm := r.configMaps[0]
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
		r := render(t, doc)
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
		}{"liveness": {c.LivenessProbe, "/livez"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
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
		if svc := r.service.Spec.Ports; len(svc) != 1 || svc[0].TargetPort != intstr.FromString("http") {
			t.Errorf("Service ports %+v, want one to the http port", svc)
		}
	}
}

// TestEnvIsTheContracts checks that every variable the chart sets is one
// the service reads, as the contract names them.
func TestEnvIsTheContracts(t *testing.T) {
	contract := contractVariables(t)
	for _, doc := range []string{"", certificateValues, workloadIdentityValues, kedaValues,
		"defender: {apiUrl: 'https://eu.api.security.microsoft.com', scope: x}\nazure: {authorityHost: 'https://login.example/'}\n"} {
		for name := range render(t, doc).env(t) {
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
		for i, v := range r.deployment.Spec.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.Secret == nil {
				t.Fatalf("%s: volume %s is not a Secret", file, v.Name)
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return &r.deployment.Spec.Template.Spec.Volumes[i], it.Key
				}
			}
			t.Fatalf("%s: Secret %s mounts no file %s (%+v)", file, v.Secret.SecretName, rel, v.Secret.Items)
		}
		t.Fatalf("%s: mount %s has no volume", file, m.Name)
	}
	t.Fatalf("%s is under no volume mount %+v", file, c.VolumeMounts)
	return nil, ""
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
