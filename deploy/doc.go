// Package deploy holds the Kubernetes deployment of alert-domains: the Helm
// chart in helm/alert-domains and, in its tests, the offline checks CI runs
// on it: helm lint, helm template for each credential form and option, every
// rendered object decoded strictly into its Kubernetes API type (KEDA's
// ScaledObject and the Prometheus Operator's ServiceMonitor into strict
// structs of their schemas), and the probes against the service's HTTP
// routes. Helm is built from its Go module here, in a module of its own, so
// the service's go.mod never carries it.
package deploy
