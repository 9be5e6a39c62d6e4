// Package deploy holds the Kubernetes deployment of alert-domains: the Helm
// chart in helm/alert-domains and the NATS server configurations in nats/
// (permissions.conf, one account with a user per role; tenants-permissions.conf,
// an account per customer). Only the service's NATS user may publish results.
//
// The chart's values are in its README, by feature. No secret is ever an
// environment variable but OTEL_EXPORTER_OTLP_HEADERS, which has no file form.
//
// Its tests are the offline checks CI runs on them: the chart linted,
// rendered (for each credential form and option) and decoded strictly into the
// Kubernetes API types, its pods held to the "restricted" Pod Security
// checks; nats-server on each NATS configuration as shipped. Helm and
// nats-server are built from their Go modules in this module of its own, so
// the service's go.mod never carries Helm.
package deploy
