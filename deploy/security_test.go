package deploy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// secretVariables are the service's variables that would hold a secret
// itself; the chart gives every credential as a file instead.
var secretVariables = []string{
	"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "NATS_PASSWORD", "NATS_TOKEN",
}

// TestNoSecretInTheEnvironment renders every values set: no variable holds
// a secret, none is read from a Secret but OTEL_EXPORTER_OTLP_HEADERS (the
// one OpenTelemetry setting with no file form), nothing comes in through
// envFrom, and every Secret and the tenants file are mounted read-only.
func TestNoSecretInTheEnvironment(t *testing.T) {
	for name, docs := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			r := render(t, docs...)
			c := r.container(t)
			if len(c.EnvFrom) > 0 {
				t.Errorf("envFrom %+v", c.EnvFrom)
			}
			for name, e := range r.env(t) {
				if slices.Contains(secretVariables, name) {
					t.Errorf("%s set", name)
				}
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && name != "OTEL_EXPORTER_OTLP_HEADERS" {
					t.Errorf("%s read from Secret %s", name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			expectReadOnlyMounts(t, r)
		})
	}
}

// expectReadOnlyMounts checks that every Secret and ConfigMap volume is
// mounted, and only read-only.
func expectReadOnlyMounts(t *testing.T, r *rendered) {
	t.Helper()
	for _, v := range r.deployment.Spec.Template.Spec.Volumes {
		if v.Secret == nil && v.ConfigMap == nil {
			continue
		}
		mounted := false
		for _, m := range r.container(t).VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			mounted = true
			if !m.ReadOnly {
				t.Errorf("volume %s mounted writable at %s", v.Name, m.MountPath)
			}
		}
		if !mounted {
			t.Errorf("volume %s is not mounted", v.Name)
		}
	}
}

// TestTenantsFileOfTheUser gives the service a tenants file of the user's,
// from a Secret or a ConfigMap: TENANTS_FILE is the key of the mounted
// volume, the Secrets the file names are mounted read-only under
// /etc/alert-domains/secrets/<name>/, and nothing of the chart's own
// credential is left.
func TestTenantsFileOfTheUser(t *testing.T) {
	for name, tc := range map[string]struct {
		docs []string
		from string // "Secret" or "ConfigMap"
	}{
		"secret":     {[]string{tenantsFileValues}, "Secret"},
		"config map": {[]string{tenantsFileValues, "tenantsFile: {secretName: '', configMapName: soc-tenants}\n"}, "ConfigMap"},
	} {
		t.Run(name, func(t *testing.T) {
			r := render(t, tc.docs...)
			env := r.env(t)
			file := env["TENANTS_FILE"].Value
			vol, key := mountedFile(t, r, file)
			switch {
			case tc.from == "Secret" && (vol.Secret == nil || vol.Secret.SecretName != "soc-tenants"),
				tc.from == "ConfigMap" && (vol.ConfigMap == nil || vol.ConfigMap.Name != "soc-tenants"):
				t.Errorf("TENANTS_FILE %s is in volume %+v, want %s soc-tenants", file, vol.VolumeSource, tc.from)
			}
			if key != "tenants.yml" {
				t.Errorf("TENANTS_FILE %s is key %s, want tenants.yml", file, key)
			}
			for _, secret := range []string{"contoso-app", "fabrikam.app"} {
				path := "/etc/alert-domains/secrets/" + secret + "/client-secret"
				vol, key := mountedSecretFile(t, r, path)
				if vol.Secret.SecretName != secret || key != "client-secret" {
					t.Errorf("%s is key %s of Secret %s", path, key, vol.Secret.SecretName)
				}
			}
			for name := range env {
				if strings.HasPrefix(name, "AZURE_") {
					t.Errorf("%s set beside a tenants file", name)
				}
			}
			if len(r.configMaps) != 0 {
				t.Errorf("the chart wrote ConfigMaps beside the user's tenants file: %v", r.objects)
			}
			expectSecure(t, r)
		})
	}
}

// TestNATSCredentialAndTLS checks the service's NATS user (a creds file or
// an nkey seed) and TLS files, mounted read-only where the variables
// point, and that the chart refuses to connect without a credential unless
// told to.
func TestNATSCredentialAndTLS(t *testing.T) {
	t.Run("creds", func(t *testing.T) {
		r := render(t, minimalValues)
		env := r.env(t)
		vol, key := mountedSecretFile(t, r, env["NATS_CREDS_FILE"].Value)
		if vol.Secret.SecretName != "alert-domains-nats" || key != "nats.creds" {
			t.Errorf("NATS_CREDS_FILE is key %s of Secret %s", key, vol.Secret.SecretName)
		}
		if _, ok := env["NATS_NKEY_FILE"]; ok {
			t.Error("NATS_NKEY_FILE set beside NATS_CREDS_FILE")
		}
	})
	t.Run("nkey", func(t *testing.T) {
		r := render(t, workloadIdentityValues)
		env := r.env(t)
		vol, key := mountedSecretFile(t, r, env["NATS_NKEY_FILE"].Value)
		if vol.Secret.SecretName != "alert-domains-nats" || key != "seed.nk" {
			t.Errorf("NATS_NKEY_FILE is key %s of Secret %s", key, vol.Secret.SecretName)
		}
		if _, ok := env["NATS_CREDS_FILE"]; ok {
			t.Error("NATS_CREDS_FILE set beside NATS_NKEY_FILE")
		}
	})
	t.Run("TLS", func(t *testing.T) {
		for _, tc := range []struct {
			doc  string
			want map[string]string
		}{
			{"nats: {tls: {secretName: nats-ca, ca: ca.pem}}\n", map[string]string{"NATS_TLS_CA_FILE": "ca.pem"}},
			{"nats: {tls: {secretName: nats-client-tls, ca: ca.crt, cert: tls.crt, key: tls.key}}\n",
				map[string]string{"NATS_TLS_CA_FILE": "ca.crt", "NATS_TLS_CERT_FILE": "tls.crt", "NATS_TLS_KEY_FILE": "tls.key"}},
		} {
			r := render(t, minimalValues, tc.doc)
			env := r.env(t)
			for _, name := range []string{"NATS_TLS_CA_FILE", "NATS_TLS_CERT_FILE", "NATS_TLS_KEY_FILE"} {
				want, ok := tc.want[name]
				if !ok {
					if _, set := env[name]; set {
						t.Errorf("%s: %s set", tc.doc, name)
					}
					continue
				}
				vol, key := mountedSecretFile(t, r, env[name].Value)
				if key != want || !strings.Contains(tc.doc, vol.Secret.SecretName) {
					t.Errorf("%s: %s is key %s of Secret %s, want %s", tc.doc, name, key, vol.Secret.SecretName, want)
				}
			}
		}
	})
	t.Run("none", func(t *testing.T) {
		for doc, want := range map[string]string{
			"nats: {creds: {secretName: ''}}\n":     "nats: no credential for the service's NATS user",
			"nats: {nkey: {secretName: nats-nk}}\n": "nats: set nats.creds.secretName or nats.nkey.secretName, not both",
		} {
			_, err := template(t, minimalValues, doc)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q: %v, want an error with %q", doc, err, want)
			}
		}
		r := render(t, minimalValues, "nats: {creds: {secretName: ''}, allowAnonymous: true}\n")
		for name := range r.env(t) {
			if strings.HasPrefix(name, "NATS_") && name != "NATS_URL" {
				t.Errorf("%s set with allowAnonymous", name)
			}
		}
	})
}

// TestImageByDigest checks that a digest pins the image, whatever the tag.
func TestImageByDigest(t *testing.T) {
	const digest = "sha256:3f1e6c0b9d8a7f6e5d4c3b2a1908f7e6d5c4b3a291807f6e5d4c3b2a1908f7e6"
	for _, tc := range []struct {
		docs []string
		want string
	}{
		{[]string{exampleValues(t)}, "registry.example.com/soc/alert-domains@" + digest},
		{[]string{minimalValues, "image: {repository: r.example/ad, tag: '1.4.0', digest: '" + digest + "'}\n"}, "r.example/ad@" + digest},
		{[]string{minimalValues, "image: {repository: r.example/ad, tag: '1.4.0'}\n"}, "r.example/ad:1.4.0"},
	} {
		if got := render(t, tc.docs...).container(t).Image; got != tc.want {
			t.Errorf("image %q, want %q", got, tc.want)
		}
	}
}

// TestOpenTelemetry checks the variables of the otel values, and that
// tracing stays off (no OTEL_* variable) without an endpoint.
func TestOpenTelemetry(t *testing.T) {
	r := render(t, minimalValues, otelValues)
	env := r.env(t)
	for name, want := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability.svc.cluster.local:4317",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
		"OTEL_SERVICE_NAME":           "soc-alert-domains",
		"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=prod,service.namespace=soc",
		"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":     "0.25",
		"DEFENDER_API":                "mde",
	} {
		expectValue(t, env, name, want)
	}
	expectSecretRef(t, env, "OTEL_EXPORTER_OTLP_HEADERS", "otel-auth", "headers")

	for name := range render(t, minimalValues).env(t) {
		if strings.HasPrefix(name, "OTEL_") {
			t.Errorf("%s set without otel.endpoint", name)
		}
	}
}

// TestNetworkPolicy checks who may reach the pods and where they may
// connect: by default nobody reaches the HTTP port (/metrics names the
// customers); with peers selected, exactly they reach it and no other
// port; the pods connect only to NATS on its ports, to DNS, to HTTPS and,
// when tracing is on, to the collector's port.
func TestNetworkPolicy(t *testing.T) {
	natsPeers := peers(t, `
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: nats}}
  podSelector: {matchLabels: {app.kubernetes.io/name: nats}}
`)
	dnsPeers := peers(t, `
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
  podSelector: {matchLabels: {k8s-app: kube-dns}}
`)
	prometheus := peers(t, `
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
  podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}
`)
	otelPeers := peers(t, `
- namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: observability}}
`)
	for _, tc := range []struct {
		name    string
		docs    []string
		ingress []networkingv1.NetworkPolicyPeer // nil: no ingress at all
		egress  map[string][]networkingv1.NetworkPolicyPeer
	}{
		{"defaults", []string{minimalValues}, nil, map[string][]networkingv1.NetworkPolicyPeer{
			"TCP/4222": natsPeers, "UDP/53": dnsPeers, "TCP/53": dnsPeers, "TCP/443": nil,
		}},
		{"example", []string{exampleValues(t)}, prometheus, map[string][]networkingv1.NetworkPolicyPeer{
			"TCP/4222": natsPeers, "UDP/53": dnsPeers, "TCP/53": dnsPeers, "TCP/443": nil, "TCP/4318": nil,
		}},
		{"servers on other ports, tracing", []string{minimalValues, otelValues,
			"nats: {servers: ['nats://a.example:4223', 'tls://user:pw@b.example', 'nats://c.example:4223']}\n"}, nil,
			map[string][]networkingv1.NetworkPolicyPeer{
				"TCP/4223": natsPeers, "TCP/4222": natsPeers, "UDP/53": dnsPeers, "TCP/53": dnsPeers, "TCP/443": nil, "TCP/4317": otelPeers,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := render(t, tc.docs...)
			np := r.networkPolicy
			if np == nil {
				t.Fatalf("no NetworkPolicy: %v", r.objects)
			}
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Empty() || !sel.Matches(labels.Set(r.deployment.Spec.Template.Labels)) {
				t.Errorf("NetworkPolicy selects %v, not the pods %v", sel, r.deployment.Spec.Template.Labels)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
				t.Errorf("policy types %v, want Ingress and Egress", np.Spec.PolicyTypes)
			}
			// Ingress: nothing, or the selected peers to the HTTP port alone.
			switch {
			case tc.ingress == nil && len(np.Spec.Ingress) != 0:
				t.Errorf("ingress %+v, want none", np.Spec.Ingress)
			case tc.ingress != nil:
				if len(np.Spec.Ingress) != 1 || !reflect.DeepEqual(np.Spec.Ingress[0].From, tc.ingress) {
					t.Fatalf("ingress %+v, want one rule from %+v", np.Spec.Ingress, tc.ingress)
				}
				ports := np.Spec.Ingress[0].Ports
				if len(ports) != 1 || ports[0].Port == nil || ports[0].Protocol == nil || *ports[0].Protocol != corev1.ProtocolTCP {
					t.Fatalf("ingress ports %+v, want the HTTP port alone", ports)
				}
				if p := *ports[0].Port; p != intstr.FromString("http") && p.IntValue() != httpPort(t, r) {
					t.Errorf("ingress to port %v, the HTTP port is %d", p, httpPort(t, r))
				}
			}
			// Egress: each port to its peers; no rule without ports.
			got := map[string][]networkingv1.NetworkPolicyPeer{}
			for _, rule := range np.Spec.Egress {
				if len(rule.Ports) == 0 {
					t.Errorf("egress rule to %+v on every port", rule.To)
				}
				for _, p := range rule.Ports {
					if p.Port == nil || p.Protocol == nil || p.EndPort != nil {
						t.Errorf("egress port %+v, want one port and a protocol", p)
						continue
					}
					key := string(*p.Protocol) + "/" + p.Port.String()
					if _, dup := got[key]; dup {
						t.Errorf("egress %s in two rules", key)
					}
					got[key] = rule.To
				}
			}
			if !reflect.DeepEqual(got, tc.egress) {
				t.Errorf("egress\n%+v\nwant\n%+v", got, tc.egress)
			}
		})
	}
	if r := render(t, minimalValues, "networkPolicy: {enabled: false}\n"); r.networkPolicy != nil {
		t.Error("NetworkPolicy rendered while disabled")
	}
}

// peers parses a list of NetworkPolicyPeer.
func peers(t *testing.T, doc string) []networkingv1.NetworkPolicyPeer {
	t.Helper()
	var p []networkingv1.NetworkPolicyPeer
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// httpPort is the container's port named http.
func httpPort(t *testing.T, r *rendered) int {
	t.Helper()
	for _, p := range r.container(t).Ports {
		if p.Name == "http" {
			return int(p.ContainerPort)
		}
	}
	t.Fatal("no port named http")
	return 0
}

// TestPodSecurityRestricted evaluates the pods of every values set with
// the Pod Security admission's own checks at the "restricted" level, and
// that those checks do refuse a pod that breaks it.
func TestPodSecurityRestricted(t *testing.T) {
	for name, docs := range valueSets(t) {
		t.Run(name, func(t *testing.T) {
			expectSecure(t, render(t, docs...))
		})
	}
	r := render(t, minimalValues, "extraVolumes: [{name: host, hostPath: {path: /var/run}}]\nextraVolumeMounts: [{name: host, mountPath: /host}]\n")
	if v := restrictedViolations(t, r); len(v) == 0 {
		t.Error("a hostPath volume meets Pod Security restricted")
	}
}

// expectRestricted checks the pod template against Pod Security
// "restricted", latest version.
func expectRestricted(t *testing.T, r *rendered) {
	t.Helper()
	for _, v := range restrictedViolations(t, r) {
		t.Errorf("Pod Security restricted: %s", v)
	}
}

func restrictedViolations(t *testing.T, r *rendered) []string {
	t.Helper()
	ev, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := r.deployment.Spec.Template
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	var v []string
	for _, res := range ev.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec) {
		if !res.Allowed {
			v = append(v, res.ForbiddenReason+": "+res.ForbiddenDetail)
		}
	}
	return v
}

// TestNotesWarn checks that the notes Helm prints after an installation
// warn of what leaves results forgeable or /metrics open, and tell where
// to select Prometheus.
func TestNotesWarn(t *testing.T) {
	for _, tc := range []struct {
		docs      []string
		want, not []string
	}{
		{[]string{minimalValues}, []string{"select your Prometheus in\nnetworkPolicy.metrics.from", "NATS user: creds"}, []string{"WARNING"}},
		{[]string{exampleValues(t)}, []string{"NATS user: nkey; TLS: mutual", "Traces: http://otel-collector"}, []string{"WARNING", "select your Prometheus"}},
		{[]string{minimalValues, "nats: {creds: {secretName: ''}, allowAnonymous: true}\n"}, []string{"WARNING: no NATS credential"}, nil},
		{[]string{minimalValues, "networkPolicy: {enabled: false}\n"}, []string{"WARNING: networkPolicy.enabled=false"}, nil},
	} {
		n := notes(t, tc.docs...)
		for _, s := range tc.want {
			if !strings.Contains(n, s) {
				t.Errorf("notes without %q:\n%s", s, n)
			}
		}
		for _, s := range tc.not {
			if strings.Contains(n, s) {
				t.Errorf("notes with %q:\n%s", s, n)
			}
		}
	}
}
