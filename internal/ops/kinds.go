package ops

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alert-domains/alert-domains/message"
)

// KindInfo is a failure kind as an operator meets it.
type KindInfo struct {
	Kind       message.Kind
	When       string
	Replayable bool
	Action     string
}

// Kinds are the failure kinds of the contract, in its order.
var Kinds = []KindInfo{
	{message.KindInvalidRequest, "the body is not one of the three request forms, or the alert ID is not valid", false,
		"Fix the publisher: the failure's request field shows what it sent. Never sent to Microsoft; a replay fails the same way."},
	{message.KindBadRequest, "Microsoft answered 400 (or another 4xx not listed)", false,
		"Check the alert ID's form for the API in use (DEFENDER_API) and DEFENDER_API_URL; replay with --kind bad_request once fixed."},
	{message.KindUnauthorized, "no token could be had, or Microsoft answered 401 after one fresh token", true,
		"Fix the credential (an expired secret or certificate, AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST; the tenant's entry in TENANTS_FILE), then replay --failed."},
	{message.KindForbidden, "Microsoft answered 403: the app lacks SecurityAlert.Read.All (graph) or URL.Read.All (mde), or the token is for another audience", true,
		"Grant the permission with admin consent (status shows it per tenant) or fix DEFENDER_SCOPE, then replay --failed."},
	{message.KindNotFound, "Microsoft answered 404", false,
		"Check the alert ID and the tenant it belongs to; on graph an endpoint ID is asked as da<ID> too. A replay asks again only with --kind not_found."},
	{message.KindThrottled, "Microsoft kept answering 429 until the retry budget (RETRY_MAX_ELAPSED) ran out", true,
		"Set DEFENDER_RATE_LIMITS to the quota Microsoft grants (shared by the replicas with QUOTA_SCOPE=shared), then replay --failed."},
	{message.KindUnavailable, "5xx, time-outs or network errors until the retry budget ran out, or the delivery limit (MAX_DELIVER) was reached", true,
		"Check the network, TLS trust (SSL_CERT_FILE) and Microsoft's service health; replay --failed once it answers."},
	{message.KindBadResponse, "a 2xx answer that is not the documented JSON, or is too large", false,
		"Usually a proxy or a wrong DEFENDER_API_URL answering in Microsoft's place: fix the URL, then replay with --kind bad_response."},
	{message.KindUnknownTenant, "the request names a tenant that is not configured", true,
		"Add the tenant to TENANTS_FILE (reloaded without a restart), then replay --failed --tenant NAME."},
}

// ParseKinds reads a list of failure kinds, comma separated: "all" is
// every kind (nil), "" the replayable ones (defaults is then true).
func ParseKinds(s string) (kinds map[message.Kind]bool, defaults bool, err error) {
	s = strings.TrimSpace(s)
	if s == "all" {
		return nil, false, nil
	}
	kinds = map[message.Kind]bool{}
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k.Kind)
		if s == "" && k.Replayable {
			kinds[k.Kind] = true
		}
	}
	if s == "" {
		return kinds, true, nil
	}
	for k := range strings.SplitSeq(s, ",") {
		if k = strings.TrimSpace(k); !slices.Contains(names, k) {
			return nil, false, fmt.Errorf("%q is not a failure kind (%s, or all)", k, strings.Join(names, ", "))
		}
		kinds[message.Kind(k)] = true
	}
	return kinds, false, nil
}
