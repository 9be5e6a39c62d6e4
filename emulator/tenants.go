package emulator

import (
	"net/http"
	"strings"
)

// Tenants serves several emulators, one per Entra tenant, on one origin:
// an Entra call goes to the emulator of the tenant its path names, an API
// call to the one that issued its bearer token; the first answers when
// none does (an unknown tenant or token).
type Tenants []*Emulator

func (ts Tenants) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	tok := bearerToken(r)
	for _, e := range ts {
		if strings.EqualFold(tenant, e.TenantID()) || e.issuedToken(tok) {
			e.ServeHTTP(w, r)
			return
		}
	}
	ts[0].ServeHTTP(w, r)
}

func (e *Emulator) issuedToken(tok string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.tokens[tok]
	return ok && tok != ""
}
