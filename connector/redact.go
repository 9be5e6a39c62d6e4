package connector

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const redacted = "[redacted]"

// secretField matches a secret field and its value in a form, JSON or header.
var secretField = regexp.MustCompile(`(?i)((?:client_secret|client_assertion|access_token|refresh_token|id_token|assertion|password)"?\s*(?:=|%3D|:)\s*"?)([^&"\s,;}]+)`)

var bearerToken = regexp.MustCompile(`(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)`)

// jwt matches a JSON web token (a signed client assertion, an access token).
var jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*)?`)

// scrub removes from s the secrets given (in any encoding), secret fields'
// values, bearer tokens and JWTs: Entra ID may echo the token request.
func scrub(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.ReplaceAll(secret, "/", `\/`)} {
			s = strings.ReplaceAll(s, form, redacted)
		}
	}
	s = secretField.ReplaceAllString(s, "${1}"+redacted)
	s = bearerToken.ReplaceAllString(s, "${1}"+redacted)
	return jwt.ReplaceAllString(s, redacted)
}

// credentialError is a failure of the credential, its text scrubbed.
type credentialError struct {
	msg        string
	authFailed bool   // an azidentity authentication failure
	status     int    // the HTTP status of Entra ID's answer, 0 when none came
	problem    string // a failure waiting cannot cure (see permanentProblem), or ""
}

func (e *credentialError) Error() string { return e.msg }

// newCredentialError scrubs err of secrets, unless it is a credentialError.
func newCredentialError(err error, secrets ...string) *credentialError {
	if ce, ok := errors.AsType[*credentialError](err); ok {
		return ce
	}
	ce := &credentialError{msg: strings.Join(strings.Fields(scrub(err.Error(), secrets...)), " ")} // one line: azidentity's spans several
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &afe) && afe.RawResponse != nil:
		// Entra ID answered: its text says nothing about the network.
		ce.authFailed, ce.status = true, afe.RawResponse.StatusCode
	case afe != nil:
		ce.authFailed, ce.problem = true, permanentProblem(err)
	default:
		ce.problem = permanentProblem(err)
	}
	return ce
}

// redactingCredential is a credential whose errors are scrubbed.
type redactingCredential struct {
	cred    azcore.TokenCredential
	secrets []string
}

func (c *redactingCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.cred.GetToken(ctx, opts)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return tok, ctxErr
		}
		return azcore.AccessToken{}, newCredentialError(err, c.secrets...)
	}
	return tok, nil
}
