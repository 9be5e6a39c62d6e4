package connector

import (
	"fmt"
	"regexp"
)

// API is a Microsoft API that says which domains an alert involves.
type API string

const (
	Graph API = "graph" // Microsoft Graph security alerts_v2, the default
	MDE   API = "mde"   // the Defender for Endpoint API, retired on MDERetirement
)

// MDERetirement is the day the Defender for Endpoint API stops answering.
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

// DefaultRateLimits is the API's documented quota per app registration.
func (a API) DefaultRateLimits() string {
	if a == MDE {
		return "100/1m,1500/1h"
	}
	return "150/1m"
}

func (a API) wire() wire {
	if a == MDE {
		return mdeWire{}
	}
	return graphWire{}
}

// wire is what one API does its own way; the rest is the Client's.
type wire interface {
	path(alertID string) string                                 // escaped, under the base URL
	template() string                                           // path without the ID
	read(body []byte, hosts *hostSet) (next string, err *Error) // a 2xx body
	retryAs(alertID string) (string, bool)                      // the ID to ask after a 404
}

// legacyID is an endpoint alert ID without a product prefix.
var legacyID = regexp.MustCompile(`^(?:[0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})_-?[0-9]+$`)

// GraphPrefix is Graph's prefix of a Defender for Endpoint alert's ID.
const GraphPrefix = "da"

// LegacyAlertID reports whether id is an endpoint ID Graph knows as GraphPrefix + id.
func LegacyAlertID(id string) bool { return legacyID.MatchString(id) }
