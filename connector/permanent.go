package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
)

// permanentProblem describes a failure waiting cannot cure (an untrusted
// certificate, no TLS, NXDOMAIN), or returns "".
func permanentProblem(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		dns      *net.DNSError
	)
	switch {
	case errors.As(err, &unknown):
		return "tls certificate signed by an unknown authority"
	case errors.As(err, &hostname):
		return "tls certificate not valid for " + hostname.Host
	case errors.As(err, &invalid):
		return "tls certificate invalid: " + strings.TrimPrefix(invalid.Error(), "x509: ")
	case errors.As(err, &verify):
		return "tls certificate not trusted"
	case errors.As(err, &record):
		return "the server does not speak tls"
	case errors.As(err, &dns) && dns.IsNotFound:
		return "host " + dns.Name + " not found (dns)"
	}
	// net/http replaces the TLS error of a plain HTTP answer with a text.
	return permanentProblemText(err.Error())
}

// permanentProblemText is permanentProblem for errors only text (MSAL, net/http).
func permanentProblemText(text string) string {
	for _, p := range []struct{ text, problem string }{
		{"x509: certificate signed by unknown authority", "tls certificate signed by an unknown authority"},
		{"x509: certificate is valid for", "tls certificate not valid for the host"},
		{"x509: certificate is not valid for any names", "tls certificate not valid for the host"},
		{"x509: cannot validate certificate for", "tls certificate not valid for the host"},
		{"x509: certificate has expired or is not yet valid", "tls certificate expired or not yet valid"},
		{"tls: failed to verify certificate", "tls certificate not trusted"},
		{"first record does not look like a TLS handshake", "the server does not speak tls"},
		{"server gave HTTP response to HTTPS client", "the server does not speak tls"},
		{": no such host", "host not found (dns)"},
	} {
		if strings.Contains(text, p.text) {
			return p.problem
		}
	}
	return ""
}

// defaultRetryStatus are the statuses the Azure SDK retries by default.
var defaultRetryStatus = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// sdkShouldRetry is the Azure SDK's retry decision, but not for a permanent problem.
func sdkShouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		return permanentProblem(err) == ""
	}
	return slices.Contains(defaultRetryStatus, resp.StatusCode)
}
