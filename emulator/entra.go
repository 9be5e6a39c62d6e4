package emulator

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

func baseURL(r *http.Request) string {
	if r.TLS == nil {
		return "http://" + r.Host
	}
	return "https://" + r.Host
}

// entraError answers Entra's error body with AADSTS error aadsts.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, text string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s", aadsts, text),
		"error_codes":       []int{aadsts},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
	})
}

// inTenant serves Entra's calls of the emulator's tenant with h.
func (e *Emulator) inTenant(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.PathValue("tenant"), e.cfg.TenantID) {
			entraError(w, http.StatusBadRequest, "invalid_tenant", 90002,
				fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", r.PathValue("tenant")))
			return
		}
		h(w, r)
	}
}

// openIDConfiguration is the tenant's OpenID discovery document; MSAL reads
// its endpoints and issuer.
func (e *Emulator) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	base, tenant := baseURL(r), r.PathValue("tenant")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/" + tenant + "/v2.0",
		"authorization_endpoint":                base + "/" + tenant + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/" + tenant + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/" + tenant + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "microsoftonline.com",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

// resourceAPI is resource's API ("" for another one Entra knows), if known.
func resourceAPI(resource string) (api connector.API, known bool) {
	switch strings.ToLower(strings.TrimSuffix(resource, "/")) {
	case "https://api.securitycenter.microsoft.com",
		"https://api.security.microsoft.com",
		"https://securitycenter.onmicrosoft.com/windowsatpservice",
		"https://api-gcc.securitycenter.microsoft.us",
		"https://api-gov.securitycenter.microsoft.us",
		"https://securitycenter.onmicrosoft.us/windowsatpservice",
		"fc780465-2017-40d4-a0c5-307022471b92":
		return connector.MDE, true
	case "https://graph.microsoft.com", "https://graph.microsoft.us", "https://dod-graph.microsoft.us",
		"00000003-0000-0000-c000-000000000000":
		return connector.Graph, true
	case "https://management.azure.com":
		return "", true
	}
	return "", false
}

// mdePermissions are the endpoint API's permissions; any other is Graph's.
var mdePermissions = []string{"URL.Read.All", "Alert.Read.All", "Alert.ReadWrite.All", "Ip.Read.All", "File.Read.All", "Machine.Read.All"}

// rolesFor are the granted permissions of api.
func rolesFor(api connector.API, granted []string) []string {
	return slices.DeleteFunc(slices.Clone(granted), func(p string) bool {
		return api == "" || (api == connector.MDE) != slices.Contains(mdePermissions, p)
	})
}

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be a form.")
		return
	}
	f := r.PostForm
	if e.scriptedToken(w, f) || !e.clientAuthenticated(w, f) {
		return
	}
	resource, api, ok := e.tokenResource(w, f)
	if !ok {
		return
	}
	claims := f.Get("claims")
	if claims != "" && !json.Valid([]byte(claims)) {
		entraError(w, http.StatusBadRequest, "invalid_request", 90014, "The claims parameter is not valid JSON.")
		return
	}
	e.mu.Lock()
	now := time.Now()
	maps.DeleteFunc(e.tokens, func(_ string, it issued) bool { return now.After(it.expires) })
	roles := rolesFor(api, e.permissions)
	tok := e.jwt(resource, roles, now)
	e.tokens[tok] = issued{expires: now.Add(e.cfg.TokenLifetime), api: api, roles: roles}
	e.tokensIssued++
	if claims != "" {
		e.tokenClaims++
	}
	life := int(e.cfg.TokenLifetime / time.Second)
	e.mu.Unlock()

	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": tok})
}

func (e *Emulator) scriptedToken(w http.ResponseWriter, f url.Values) bool {
	e.mu.Lock()
	script, ok := pop(&e.tokenScripts)
	e.mu.Unlock()
	if !ok {
		return false
	}
	body := script.Body
	if script.EchoForm {
		body += f.Encode()
	}
	for k, vs := range script.Header {
		w.Header()[k] = slices.Clone(vs)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(cmp.Or(script.Status, http.StatusOK))
	_, _ = io.WriteString(w, body)
	return true
}

// clientAuthenticated checks the grant and credential, or answers Entra's error.
func (e *Emulator) clientAuthenticated(w http.ResponseWriter, f url.Values) bool {
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return false
	}
	if f.Get("client_id") != e.cfg.ClientID {
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", f.Get("client_id"), e.cfg.TenantID))
		return false
	}
	switch {
	case f.Has("client_secret"):
		if subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(e.cfg.ClientSecret)) != 1 {
			entraError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
			return false
		}
	case f.Has("client_assertion"):
		if f.Get("client_assertion_type") != jwtBearer || !looksLikeJWT(f.Get("client_assertion")) {
			entraError(w, http.StatusUnauthorized, "invalid_client", 50027, "JWT token is invalid or malformed.")
			return false
		}
	default:
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return false
	}
	return true
}

func (e *Emulator) tokenResource(w http.ResponseWriter, f url.Values) (resource string, api connector.API, ok bool) {
	for s := range strings.FieldsSeq(f.Get("scope")) {
		if strings.HasSuffix(s, "/.default") {
			resource = strings.TrimSuffix(s, "/.default")
		}
	}
	if resource == "" {
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope")))
		return "", "", false
	}
	api, known := resourceAPI(resource)
	if !known {
		entraError(w, http.StatusBadRequest, "invalid_resource", 500011,
			fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, e.cfg.TenantID))
		return "", "", false
	}
	return resource, api, true
}

// jwt is an app-only access token as Entra shapes it, with a random signature.
func (e *Emulator) jwt(resource string, roles []string, now time.Time) string {
	var sig [32]byte
	_, _ = rand.Read(sig[:])
	header, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": "emulator"})
	claims := map[string]any{
		"aud":   resource,
		"iss":   "https://sts.windows.net/" + e.cfg.TenantID + "/",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(e.cfg.TokenLifetime).Unix(),
		"appid": e.cfg.ClientID,
		"tid":   e.cfg.TenantID,
		"oid":   e.cfg.ClientID,
		"uti":   base64.RawURLEncoding.EncodeToString(sig[:9]),
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig[:])
}

func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	return len(parts) == 3 && parts[0] != "" && parts[1] != ""
}
