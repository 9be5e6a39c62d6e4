package ops

import (
	"slices"
	"testing"
)

func TestTailFilter(t *testing.T) {
	f := TailFilter{Tenant: "contoso", Success: "ok", Failure: "bad"}
	all := TailFilter{Success: "ok", Failure: "bad"}
	subjects := []struct {
		name              string
		f                 TailFilter
		failed, succeeded bool
		want              []string
	}{
		{"tenant, both", f, false, false, []string{"ok", "bad", "ok.contoso", "bad.contoso"}},
		{"tenant, failed", f, true, false, []string{"bad", "bad.contoso"}},
		{"tenant, succeeded", f, false, true, []string{"ok", "ok.contoso"}},
		{"every tenant", all, false, false, []string{"ok", "bad", "ok.*", "bad.*"}},
	}
	for _, tt := range subjects {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Subjects(tt.failed, tt.succeeded); !slices.Equal(got, tt.want) {
				t.Errorf("subjects %v, want %v", got, tt.want)
			}
		})
	}
	keeps := []struct {
		name    string
		f       TailFilter
		subject string
		data    string
		want    bool
	}{
		{"own subject", f, "ok.contoso", `{"status":"success","tenant":"contoso"}`, true},
		{"plain subject, its tenant", f, "bad", `{"status":"failure","tenant":"contoso"}`, true},
		{"plain subject, another tenant", f, "ok", `{"status":"success","tenant":"fabrikam"}`, false},
		{"plain subject, no tenant", f, "bad", `{"status":"failure"}`, false},
		{"plain subject, unreadable", f, "bad", `not json`, false},
		{"every tenant, unreadable", all, "bad", `not json`, true},
	}
	for _, tt := range keeps {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Keeps(tt.subject, []byte(tt.data)); got != tt.want {
				t.Errorf("keeps(%q, %s) = %v, want %v", tt.subject, tt.data, got, tt.want)
			}
		})
	}
}
