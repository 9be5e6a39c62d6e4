package connector_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
)

func TestParseAPI(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want connector.API
	}{{"graph", connector.Graph}, {"mde", connector.MDE}} {
		if got, err := connector.ParseAPI(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseAPI(%q) = %q, %v", tt.in, got, err)
		}
	}
	for _, in := range []string{"", "Graph", "MDE", " graph", "xdr", "defender"} {
		if _, err := connector.ParseAPI(in); !errors.Is(err, connector.ErrConfig) {
			t.Errorf("ParseAPI(%q) error = %v, want ErrConfig", in, err)
		}
	}
}

// TestAPIFacts: what each API needs and allows, as the contract's table
// says.
func TestAPIFacts(t *testing.T) {
	tests := []struct {
		api                              connector.API
		permission, limits, template, in string
	}{
		{connector.Graph, "SecurityAlert.Read.All", "150/1m", "/v1.0/security/alerts_v2/{id}", "GET /v1.0/security/alerts_v2/{id}"},
		{connector.MDE, "URL.Read.All", "100/1m,1500/1h", "/api/alerts/{id}/domains", "GET /api/alerts/{id}/domains"},
	}
	for _, tt := range tests {
		t.Run(string(tt.api), func(t *testing.T) {
			if got := tt.api.Permission(); got != tt.permission {
				t.Errorf("Permission = %q, want %q", got, tt.permission)
			}
			if got := tt.api.DefaultRateLimits(); got != tt.limits {
				t.Errorf("DefaultRateLimits = %q, want %q", got, tt.limits)
			}
			if _, err := connector.ParseLimits(tt.api.DefaultRateLimits()); err != nil {
				t.Errorf("ParseLimits(DefaultRateLimits) = %v", err)
			}
			if got := tt.api.URLTemplate(); got != tt.template || strings.Contains(got, "da6") {
				t.Errorf("URLTemplate = %q, want %q", got, tt.template)
			}
		})
	}
	if connector.MDERetirement != "2027-02-01" {
		t.Errorf("MDERetirement = %q", connector.MDERetirement)
	}
}

func TestIsDomain(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"www.example.com", true},
		{"a", true},
		{"xn--bcher-kva.example", true},
		{"under_score.example", true},
		{"1st.example", true},
		{"123.example", true},
		{"a-b.example", true},
		{strings.Repeat("a", 63) + ".example", true},
		{strings.Repeat("a.", 126) + "b", true}, // 253 bytes
		{"", false},
		{"WWW.example.com", false},
		{"www.example.com.", false},
		{".example.com", false},
		{"a..b", false},
		{"-a.example", false},
		{"a-.example", false},
		{strings.Repeat("a", 64) + ".example", false},
		{strings.Repeat("a.", 127), false},
		{strings.Repeat("a.", 126) + "bc", false}, // 254 bytes
		{"www.example.com:443", false},
		{"user@www.example.com", false},
		{"www.example.com/path", false},
		{"bücher.example", false},
		{"a b.example", false},
		{"*.example.com", false},
		{"192.0.2.1", false},
		{"127.1", false},
		{"2130706433", false},
		{"2001:db8::1", false},
		{"[::1]", false},
	}
	for _, tt := range tests {
		if got := connector.IsDomain(tt.s); got != tt.want {
			t.Errorf("IsDomain(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
