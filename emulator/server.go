package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alert-domains/alert-domains/connector"
)

// Server is an emulator listening on a loopback HTTPS address, started.
type Server struct {
	*Emulator
	URL string // the https base of the APIs and Entra ID, without a trailing slash
	ts  *httptest.Server
}

// NewServer starts an emulator on a loopback HTTPS address.
func NewServer(cfg Config) *Server {
	e := NewHandler(cfg)
	ts := httptest.NewUnstartedServer(e)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake errors of clients that hang up early
	ts.StartTLS()
	return &Server{Emulator: e, URL: ts.URL, ts: ts}
}

// Client returns an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.ts.Client() }

// Certificate is the server's TLS certificate.
func (s *Server) Certificate() *x509.Certificate { return s.ts.Certificate() }

// AuthorityHost is the server's Entra authority: URL with a trailing slash.
func (s *Server) AuthorityHost() string { return s.URL + "/" }

// Credential is a client secret configuration that signs in to the server.
func (s *Server) Credential() connector.CredentialConfig {
	return connector.CredentialConfig{
		TenantID:      s.TenantID(),
		ClientID:      s.ClientID(),
		ClientSecret:  s.ClientSecret(),
		AuthorityHost: s.AuthorityHost(),
		Transport:     s.Client(),
	}
}

// Close ends answers in progress and shuts the server down.
func (s *Server) Close() { s.Emulator.Close(); s.ts.Close() }

// SelfSigned makes a self-signed certificate for hosts and its PEM encoding.
func SelfSigned(hosts ...string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"alert-domains emulator"}, CommonName: "alert-domains emulator"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("emulator: certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
