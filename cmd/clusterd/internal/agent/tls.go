package agent

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// TLS: with --tls-ca, --tls-cert and --tls-key every node talks raft over mutual TLS
// (a certificate from another CA cannot join or speak raft), serves its API over
// HTTPS (a client certificate from the cluster CA authenticates like the token), and
// calls its peers' APIs with its certificate. Without them the agent runs plain and
// says so at start. The lease protocol (UDP) is not encrypted.

// tlsMaterial is the loaded certificates.
type tlsMaterial struct {
	pool *x509.CertPool
	cert tls.Certificate
}

func loadTLS(cfg *Config) (*tlsMaterial, error) {
	set := 0
	for _, v := range []string{cfg.TLSCA, cfg.TLSCert, cfg.TLSKey} {
		if v != "" {
			set++
		}
	}
	switch set {
	case 0:
		return nil, nil
	case 3:
	default:
		return nil, errors.New("TLS needs all of --tls-ca, --tls-cert and --tls-key (make them with `clusterd tls init` and `clusterd tls node`)")
	}
	caPEM, err := os.ReadFile(cfg.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate (give the CA made by `clusterd tls init`)", cfg.TLSCA)
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("load this node's certificate %s and key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &tlsMaterial{pool: pool, cert: cert}, nil
}

// raftConfig requires and verifies client certificates both ways.
func (m *tlsMaterial) raftConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cert},
		RootCAs: m.pool, ClientCAs: m.pool, ClientAuth: tls.RequireAndVerifyClientCert}
}

// apiConfig verifies a client certificate if one is given (the CLI may use the token).
func (m *tlsMaterial) apiConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cert},
		ClientCAs: m.pool, ClientAuth: tls.VerifyClientCertIfGiven}
}

// clientConfig is for calls to peers' APIs.
func (m *tlsMaterial) clientConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cert}, RootCAs: m.pool}
}

// scheme is the API's URL scheme.
func (a *Agent) scheme() string {
	if a.tls != nil {
		return "https://"
	}
	return "http://"
}

// baseTransport is the HTTP transport for peer calls (TLS when configured).
func (a *Agent) baseTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if a.tls != nil {
		t.TLSClientConfig = a.tls.clientConfig()
	}
	return t
}

func tlsRaft(m *tlsMaterial) *tls.Config {
	if m == nil {
		return nil
	}
	return m.raftConfig()
}
