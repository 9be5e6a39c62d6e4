package deploy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	strictjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart, relative to this package.
const chartDir = "helm/alert-domains"

const (
	releaseName = "alert-domains"
	namespace   = "soc"
)

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return ch
}

// values parses values documents given to the chart, each over the ones
// before it (as with helm -f doc1 -f doc2).
func values(t *testing.T, docs ...string) map[string]any {
	t.Helper()
	merged := map[string]any{}
	for _, doc := range docs {
		v, err := chartutil.ReadValues([]byte(doc))
		if err != nil {
			t.Fatalf("values %q: %v", doc, err)
		}
		mergeValues(merged, v.AsMap())
	}
	return merged
}

// mergeValues sets src's values in dst: maps key by key, anything else
// replaced, as Helm merges values files.
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// template renders the chart as `helm template` does (client only, no
// cluster), with the values documents over the chart's defaults.
func template(t *testing.T, docs ...string) (string, error) {
	t.Helper()
	rel, err := dryRun(t, docs...)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// notes renders the chart's NOTES.txt as `helm install` prints it.
func notes(t *testing.T, docs ...string) string {
	t.Helper()
	rel, err := dryRun(t, docs...)
	if err != nil {
		t.Fatalf("helm install --dry-run: %v", err)
	}
	if rel.Info == nil {
		t.Fatal("no release info")
	}
	return rel.Info.Notes
}

// dryRun installs the chart client-only, as `helm template` does.
func dryRun(t *testing.T, docs ...string) (*release.Release, error) {
	t.Helper()
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	install := action.NewInstall(cfg)
	install.DryRun = true
	install.DryRunOption = "client"
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.KubeVersion = &chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}
	return install.RunWithContext(t.Context(), loadChart(t), values(t, docs...))
}

// rendered is what the chart rendered, every object decoded strictly.
type rendered struct {
	objects        []string // "Kind/name", sorted
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	configMaps     []*corev1.ConfigMap
	networkPolicy  *networkingv1.NetworkPolicy
	scaledObject   *scaledObject
	serviceMonitor *serviceMonitor
}

// render renders the chart with docs and decodes every object; any error,
// an unknown field or an unexpected kind fails the test.
func render(t *testing.T, docs ...string) *rendered {
	t.Helper()
	manifest, err := template(t, docs...)
	if err != nil {
		t.Fatalf("helm template with values\n%s\nfailed: %v", strings.Join(docs, "---\n"), err)
	}
	r, err := decodeManifest(manifest)
	if err != nil {
		t.Fatalf("values\n%s\n%v", strings.Join(docs, "---\n"), err)
	}
	return r
}

// strictSerializer decodes the built-in Kubernetes kinds, refusing unknown
// and duplicate fields as the API server does with fieldValidation=Strict.
var strictSerializer = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

func decodeManifest(manifest string) (*rendered, error) {
	r := &rendered{}
	docs := releaseutil.SplitManifests(manifest)
	if len(docs) == 0 {
		return nil, fmt.Errorf("nothing rendered")
	}
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("not YAML: %w\n%s", err, doc)
		}
		if tm.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			return nil, fmt.Errorf("object without a kind:\n%s", doc)
		}
		var name string
		switch tm.APIVersion {
		case "keda.sh/v1alpha1":
			so, err := decodeStrict[scaledObject](doc, tm)
			if err != nil {
				return nil, err
			}
			if r.scaledObject != nil {
				return nil, fmt.Errorf("two ScaledObjects")
			}
			r.scaledObject, name = so, so.Metadata.Name
		case "monitoring.coreos.com/v1":
			sm, err := decodeStrict[serviceMonitor](doc, tm)
			if err != nil {
				return nil, err
			}
			if r.serviceMonitor != nil {
				return nil, fmt.Errorf("two ServiceMonitors")
			}
			r.serviceMonitor, name = sm, sm.Metadata.Name
		default:
			obj, gvk, err := strictSerializer.Decode([]byte(doc), nil, nil)
			if err != nil {
				return nil, fmt.Errorf("%s %s: strict decoding: %w\n%s", tm.APIVersion, tm.Kind, err, doc)
			}
			if gvk.GroupVersion().String() != tm.APIVersion || gvk.Kind != tm.Kind {
				return nil, fmt.Errorf("decoded %v, rendered %s %s", gvk, tm.APIVersion, tm.Kind)
			}
			if name, err = r.add(obj); err != nil {
				return nil, err
			}
		}
		if name == "" {
			return nil, fmt.Errorf("%s without a name", tm.Kind)
		}
		r.objects = append(r.objects, tm.Kind+"/"+name)
	}
	slices.Sort(r.objects)
	if r.deployment == nil {
		return nil, fmt.Errorf("no Deployment rendered: %v", r.objects)
	}
	return r, nil
}

func (r *rendered) add(obj runtime.Object) (string, error) {
	once := func(set bool, kind string) error {
		if set {
			return fmt.Errorf("two objects of kind %s", kind)
		}
		return nil
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		err := once(r.deployment != nil, "Deployment")
		r.deployment = o
		return o.Name, err
	case *corev1.Service:
		err := once(r.service != nil, "Service")
		r.service = o
		return o.Name, err
	case *corev1.ServiceAccount:
		err := once(r.serviceAccount != nil, "ServiceAccount")
		r.serviceAccount = o
		return o.Name, err
	case *policyv1.PodDisruptionBudget:
		err := once(r.pdb != nil, "PodDisruptionBudget")
		r.pdb = o
		return o.Name, err
	case *corev1.ConfigMap:
		r.configMaps = append(r.configMaps, o)
		return o.Name, nil
	case *networkingv1.NetworkPolicy:
		err := once(r.networkPolicy != nil, "NetworkPolicy")
		r.networkPolicy = o
		return o.Name, err
	default:
		return "", fmt.Errorf("unexpected kind %T", obj)
	}
}

// decodeStrict decodes a custom resource into T, case-sensitively, refusing
// unknown and duplicate fields, and checks its kind.
func decodeStrict[T any, P interface {
	*T
	typeMeta() metav1.TypeMeta
}](doc string, tm metav1.TypeMeta) (*T, error) {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	v := new(T)
	strict, err := strictjson.UnmarshalStrict(js, v)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", tm.APIVersion, tm.Kind, err, doc)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s %s: strict decoding: %v\n%s", tm.APIVersion, tm.Kind, strict, doc)
	}
	if got := P(v).typeMeta(); got != tm {
		return nil, fmt.Errorf("decoded %v as %v", tm, got)
	}
	return v, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// container is the Deployment's one container.
func (r *rendered) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := r.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return &cs[0]
}

// env is the container's environment by name; a name set twice fails.
func (r *rendered) env(t *testing.T) map[string]corev1.EnvVar {
	t.Helper()
	env := make(map[string]corev1.EnvVar)
	for _, e := range r.container(t).Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s set twice", e.Name)
		}
		env[e.Name] = e
	}
	return env
}
