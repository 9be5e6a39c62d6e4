// Package deploy holds the Kubernetes deployment of alert-domains: the Helm
// chart in helm/alert-domains and the NATS server configurations in nats/
// (permissions.conf, one account with a user per role; tenants-permissions.conf,
// an account per customer). Its tests are the offline checks CI runs on
// them: helm lint, helm template for each credential form and option, every
// rendered object decoded strictly into its Kubernetes API type (KEDA's
// ScaledObject and the Prometheus Operator's ServiceMonitor into strict
// structs of their schemas), the probes against the service's HTTP routes;
// and nats-server, in process, on each NATS configuration as it is shipped:
// only the service's user may publish results, and the operators' commands
// run under the operator's user. Helm and nats-server are built from their
// Go modules here, in a module of its own, so the service's go.mod never
// carries Helm.
package deploy
