// Package deploy holds the Kubernetes deployment of alert-domains: the Helm
// chart in helm/alert-domains and the NATS server configurations in nats/
// (permissions.conf, one account with a user per role; tenants-permissions.conf,
// an account per customer). Only the service's NATS user may publish results.
//
// The chart's values, briefly (its README has them by feature): azure.* is
// the app registration, its credential a file mounted from a Secret and
// named by the TENANTS_FILE the chart writes (or workload identity), and
// tenantsFile.* mounts a tenants file of the user's with the Secrets it
// names; nats.creds or nats.nkey is the service's NATS user (required) and
// nats.tls its TLS files; networkPolicy.* lets only the selected peers reach
// the HTTP port, whose /metrics names the customers, and the pods reach only
// NATS, DNS, HTTPS and the collector; image.digest pins the image; otel.*
// sets the OpenTelemetry variables; defender.api sets DEFENDER_API. No
// secret is ever an environment variable but OTEL_EXPORTER_OTLP_HEADERS,
// which has no file form.
//
// Its tests are the offline checks CI runs on them: helm lint, helm
// template for each credential form and option, every rendered object
// decoded strictly into its Kubernetes API type (KEDA's ScaledObject and
// the Prometheus Operator's ServiceMonitor into strict structs of their
// schemas), the pods evaluated by the Pod Security admission's own
// "restricted" checks, the probes against the service's HTTP routes; and
// nats-server, in process, on each NATS configuration as it is shipped:
// every user but the service's is refused on the result subjects, and the
// operators' commands, built from the service's module, run under the
// operator's user. Helm and nats-server are built from their Go modules
// here, in a module of its own, so the service's go.mod never carries Helm.
package deploy
