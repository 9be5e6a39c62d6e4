package connector

import (
	"fmt"
	"regexp"
)

// API is a Microsoft API that says which domains an alert involves.
type API string

const (
	// Graph is the Microsoft Graph security API: the hosts of the alert's
	// evidence, from GET /v1.0/security/alerts_v2/{id}.
	Graph API = "graph"
	// MDE is the Defender for Endpoint API, GET /api/alerts/{id}/domains,
	// which Microsoft retires on MDERetirement.
	MDE API = "mde"
)

// MDERetirement is the day Microsoft's Defender for Endpoint API stops
// answering (Microsoft 365 message center MC1220762).
const MDERetirement = "2027-02-01"

// ParseAPI reads an API name: graph or mde.
func ParseAPI(s string) (API, error) {
	switch a := API(s); a {
	case Graph, MDE:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q is not an API (use graph or mde)", ErrConfig, s)
}

// Permission is the application permission the API's call needs.
func (a API) Permission() string { return a.grants()[0] }

// DefaultRateLimits is the API's documented quota per app registration, in
// the form ParseLimits reads.
func (a API) DefaultRateLimits() string {
	if a == MDE {
		return "100/1m,1500/1h"
	}
	return "150/1m"
}


// URLTemplate is the API's call without the alert ID, for span names.
func (a API) URLTemplate() string { return a.wire().template() }

func (a API) wire() wire {
	if a == MDE {
		return mdeWire{}
	}
	return graphWire{}
}

// wire is what one API does its own way: where an alert is asked, how a
// 2xx answer reads, and which second form of an ID is worth asking after a
// 404.
type wire interface {
	// path is the escaped path of the call for alertID, under the base URL.
	path(alertID string) string
	template() string
	// read adds the hosts of a 2xx body to hosts and returns the next
	// page's link, if the answer has one.
	read(body []byte, hosts *hostSet) (next string, err *Error)
	// retryAs is the form of alertID to ask once more when the API
	// answered 404 for it.
	retryAs(alertID string) (string, bool)
}

// legacyID is an alert ID in the Defender for Endpoint API's form without a
// product prefix: digits, or a GUID, then "_" and a number.
var legacyID = regexp.MustCompile(`^(?:[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})_-?[0-9]+$`)

// GraphPrefix is the prefix Graph puts before the ID of a Defender for
// Endpoint alert.
const GraphPrefix = "da"

// LegacyAlertID reports whether id has the endpoint API's form without a
// product prefix, which Graph knows as GraphPrefix + id.
func LegacyAlertID(id string) bool { return legacyID.MatchString(id) }
