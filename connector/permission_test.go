package connector_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/emulator"
	"github.com/alert-domains/alert-domains/message"
)

// TestCheckPermissionAgainstTheEmulator: the roles claim of the client's
// token says whether the app was granted its API's permission; the token
// is the one the lookups then use.
func TestCheckPermissionAgainstTheEmulator(t *testing.T) {
	granted, missing := connector.PermissionGranted, connector.PermissionMissing
	tests := []struct {
		name  string
		perms []string // nil: the emulator's default, both
		want  map[connector.API]connector.Permission
	}{
		{name: "both granted", want: map[connector.API]connector.Permission{connector.Graph: granted, connector.MDE: granted}},
		{name: "graph only", perms: []string{emulator.GraphPermission},
			want: map[connector.API]connector.Permission{connector.Graph: granted, connector.MDE: connector.PermissionUnknown}},
		{name: "graph read-write", perms: []string{"SecurityAlert.ReadWrite.All", emulator.MDEPermission},
			want: map[connector.API]connector.Permission{connector.Graph: granted, connector.MDE: granted}},
		{name: "mde only", perms: []string{emulator.MDEPermission},
			want: map[connector.API]connector.Permission{connector.Graph: connector.PermissionUnknown, connector.MDE: granted}},
		{name: "another endpoint permission", perms: []string{emulator.GraphPermission, "Ip.Read.All"},
			want: map[connector.API]connector.Permission{connector.Graph: granted, connector.MDE: missing}},
		{name: "other permissions of each api", perms: []string{"SecurityIncident.Read.All", "Ip.Read.All"},
			want: map[connector.API]connector.Permission{connector.Graph: missing, connector.MDE: missing}},
		{name: "none", perms: []string{},
			want: map[connector.API]connector.Permission{connector.Graph: connector.PermissionUnknown, connector.MDE: connector.PermissionUnknown}},
	}
	for _, tt := range tests {
		forEachAPI(t, func(t *testing.T, api connector.API) {
			t.Run(tt.name, func(t *testing.T) {
				srv := newServer(t, emulator.Config{SeedData: true, Permissions: tt.perms})
				c := newClient(t, srv, api)
				got, err := c.CheckPermission(t.Context())
				if err != nil || got != tt.want[api] {
					t.Fatalf("CheckPermission = %v, %v; want %v", got, err, tt.want[api])
				}
				// A lookup agrees, with the same token.
				_, err = c.Domains(t.Context(), alertID)
				if (got == granted) != (err == nil) {
					t.Errorf("permission %v, but the lookup says %v", got, err)
				}
				if got != granted && !errors.Is(err, connector.ErrForbidden) {
					t.Errorf("lookup without the permission: %v, want forbidden", err)
				}
				if n := srv.TokensIssued(); n != 1 {
					t.Errorf("%d tokens issued, want 1", n)
				}
			})
		})
	}
}

// TestCheckPermissionAfterConsent: a permission granted or revoked shows in
// the tokens issued from then on.
func TestCheckPermissionAfterConsent(t *testing.T) {
	srv := newServer(t, emulator.Config{Permissions: []string{"SecurityIncident.Read.All", "Ip.Read.All"}})
	for _, api := range apis {
		if got, err := newClient(t, srv, api).CheckPermission(t.Context()); err != nil || got != connector.PermissionMissing {
			t.Fatalf("%s before consent: %v, %v; want missing", api, got, err)
		}
	}
	srv.SetPermissions(emulator.MDEPermission, emulator.GraphPermission)
	for _, api := range apis {
		if got, err := newClient(t, srv, api).CheckPermission(t.Context()); err != nil || got != connector.PermissionGranted {
			t.Fatalf("%s after consent: %v, %v; want granted", api, got, err)
		}
	}
	srv.SetPermissions()
	for _, api := range apis {
		if got, err := newClient(t, srv, api).CheckPermission(t.Context()); err != nil || got != connector.PermissionUnknown {
			t.Fatalf("%s after revocation: %v, %v; want unknown (a token without roles)", api, got, err)
		}
	}
}

// jwt is an unsigned token with the claims JSON.
func jwt(claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"typ":"JWT","alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(claims)) + ".c2lnbmF0dXJl"
}

// TestCheckPermissionOfStaticTokens: a token that is not a JWT, or has no
// roles claim, gives no hint.
func TestCheckPermissionOfStaticTokens(t *testing.T) {
	unknown, granted, missing := connector.PermissionUnknown, connector.PermissionGranted, connector.PermissionMissing
	enc := base64.RawURLEncoding
	tests := []struct {
		name  string
		token string
		graph connector.Permission
		mde   connector.Permission
	}{
		{"graph role", jwt(`{"aud":"https://graph.microsoft.com","roles":["SecurityAlert.Read.All"]}`), granted, missing},
		{"graph read-write role", jwt(`{"roles":["User.Read.All","SecurityAlert.ReadWrite.All"]}`), granted, missing},
		{"mde role", jwt(`{"aud":"https://api.securitycenter.microsoft.com","roles":["URL.Read.All","Ip.Read.All"]}`), missing, granted},
		{"both roles", jwt(`{"roles":["URL.Read.All","SecurityAlert.Read.All"]}`), granted, granted},
		{"roles in another case", jwt(`{"roles":["securityalert.read.all","url.read.all"]}`), missing, missing},
		{"empty roles", jwt(`{"roles":[]}`), missing, missing},
		{"no roles claim", jwt(`{"aud":"https://graph.microsoft.com","scp":"SecurityAlert.Read.All"}`), unknown, unknown},
		{"roles null", jwt(`{"roles":null}`), unknown, unknown},
		{"roles a string", jwt(`{"roles":"SecurityAlert.Read.All"}`), unknown, unknown},
		{"claims not json", jwt(`roles`), unknown, unknown},
		{"padded payload", enc.EncodeToString([]byte(`{}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"roles":["SecurityAlert.Read.All","URL.Read.All"]}`)) + ".sig", granted, granted},
		{"payload not base64", "eyJhbGciOiJub25lIn0.!!!.sig", unknown, unknown},
		{"two parts", "eyJhbGciOiJub25lIn0." + enc.EncodeToString([]byte(`{"roles":["URL.Read.All"]}`)), unknown, unknown},
		{"not a jwt", "opaque-access-token", unknown, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for api, want := range map[connector.API]connector.Permission{connector.Graph: tt.graph, connector.MDE: tt.mde} {
				c, err := connector.New(api, "https://api.example", staticCredential{tt.token}, emulator.ScopeOf(api))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := c.CheckPermission(t.Context()); err != nil || got != want {
					t.Errorf("%s: CheckPermission = %v, %v; want %v", api, got, err, want)
				}
			}
		})
	}
}

// TestCheckPermissionTokenFailure: a failure to get a token is returned as
// the *connector.Error a lookup would report.
func TestCheckPermissionTokenFailure(t *testing.T) {
	forEachAPI(t, func(t *testing.T, api connector.API) {
		t.Run("wrong secret", func(t *testing.T) {
			srv := newServer(t, emulator.Config{})
			cfg := srv.Credential()
			cfg.ClientSecret = "not-the-secret"
			cred, err := connector.NewCredential(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := newClientWith(t, srv, api, cred, emulator.ScopeOf(api)).CheckPermission(t.Context())
			var e *connector.Error
			if !errors.As(err, &e) || e.Kind != message.KindUnauthorized || got != connector.PermissionUnknown {
				t.Fatalf("CheckPermission = %v, %v; want unknown and an unauthorized *connector.Error", got, err)
			}
			if !errors.Is(err, connector.ErrUnauthorized) {
				t.Error("errors.Is(err, ErrUnauthorized) = false")
			}
		})
		t.Run("canceled", func(t *testing.T) {
			srv := newServer(t, emulator.Config{})
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			got, err := newClient(t, srv, api).CheckPermission(ctx)
			var e *connector.Error
			if !errors.As(err, &e) || e.Kind != message.KindUnavailable || !errors.Is(err, context.Canceled) || got != connector.PermissionUnknown {
				t.Fatalf("CheckPermission = %v, %v; want unknown and unavailable wrapping context.Canceled", got, err)
			}
		})
	})
}
