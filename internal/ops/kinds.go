package ops

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alert-domains/alert-domains/message"
)

// failureKinds are the error kinds of the contract.
var failureKinds = []message.Kind{
	message.KindInvalidRequest, message.KindBadRequest, message.KindUnauthorized, message.KindForbidden,
	message.KindNotFound, message.KindThrottled, message.KindUnavailable, message.KindBadResponse,
	message.KindUnknownTenant,
}

// replayableKinds are what replay --failed takes without --kind: the kinds
// a replay can fix (an outage ended, a credential or permission or tenant
// was fixed). not_found, invalid_request, bad_request and bad_response
// would fail the same way again, each spending a Defender call.
var replayableKinds = []message.Kind{
	message.KindUnavailable, message.KindThrottled, message.KindUnauthorized, message.KindForbidden,
	message.KindUnknownTenant,
}

// ParseKinds reads a list of failure kinds, comma separated: "all" is
// every kind (nil), "" the replayable ones (defaults is then true).
func ParseKinds(s string) (kinds map[message.Kind]bool, defaults bool, err error) {
	switch strings.TrimSpace(s) {
	case "all":
		return nil, false, nil
	case "":
		kinds = make(map[message.Kind]bool)
		for _, k := range replayableKinds {
			kinds[k] = true
		}
		return kinds, true, nil
	}
	kinds = make(map[message.Kind]bool)
	for k := range strings.SplitSeq(s, ",") {
		kind := message.Kind(strings.TrimSpace(k))
		if !slices.Contains(failureKinds, kind) {
			return nil, false, fmt.Errorf("%q is not a failure kind (%s, or all)", k, kindList())
		}
		kinds[kind] = true
	}
	return kinds, false, nil
}

func kindList() string {
	names := make([]string, len(failureKinds))
	for i, k := range failureKinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
