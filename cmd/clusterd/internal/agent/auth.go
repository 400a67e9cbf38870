package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/clusterd/clusterd/health/api"
)

// The cluster token authenticates every write and every /v1/ read (the CLI, other
// nodes, a joining node). The bootstrap node creates it and writes it to
// DATA_DIR/token (0600); a joining node is given it (--token / --token-file) and keeps
// it there too. /healthz, /readyz and /metrics stay open.

// loadToken finds the token: the configured one, else DATA_DIR/token, else (on a
// node that bootstraps) a new one. It is written to DATA_DIR/token.
func loadToken(cfg *Config, bootstrapping bool) (string, error) {
	path := filepath.Join(cfg.DataDir, "token")
	tok := strings.TrimSpace(cfg.Token)
	if tok == "" && cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w (give the cluster token with --token or --token-file; the bootstrap node wrote it to its DATA_DIR/token)", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		if b, err := os.ReadFile(path); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	if tok == "" {
		if !bootstrapping {
			return "", errors.New("no cluster token: a joining node needs --token T or --token-file F (the bootstrap node wrote the token to its DATA_DIR/token)")
		}
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		tok = hex.EncodeToString(b[:])
	}
	if len(tok) < 16 {
		return "", fmt.Errorf("cluster token is %d characters, at least 16 are needed (use the one the bootstrap node wrote to DATA_DIR/token)", len(tok))
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return tok, nil
}

// requireToken wraps the API: 401 unless the request carries the cluster token.
func (a *Agent) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		certOK := r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		if certOK {
			next.ServeHTTP(w, r) // a client certificate from the cluster CA
			return
		}
		if a.tls != nil && r.URL.Path == "/v1/join" {
			// In a TLS cluster a node joins with its certificate, not the token alone:
			// one from another CA could never speak raft.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: "joining this cluster needs a node certificate from the cluster CA (--tls-cert/--tls-key made with `clusterd tls node`); the one presented is missing or from another CA"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(a.token)) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="clusterd"`)
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(api.ErrorBody{Error: "missing or wrong cluster token: give --token, --token-file or CLUSTERD_TOKEN (the bootstrap node wrote it to DATA_DIR/token; `agent --dev` to ~/.clusterd-token)"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// peerTransport is the HTTP transport for calls to other nodes' APIs.
func (a *Agent) peerTransport() http.RoundTripper {
	return &tokenTransport{token: a.token, base: a.baseTransport()}
}

type tokenTransport struct {
	token string
	base  http.RoundTripper
}

func (t *tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.base.RoundTrip(r)
}

// peerGet fetches JSON from another node's API.
func (a *Agent) peerGet(ctx context.Context, c *http.Client, apiAddr, path string, v any) error {
	return getJSON(ctx, c, a.scheme()+apiAddr+path, v)
}

// writeDevToken stores the dev agent's token where the CLI finds it without flags.
func writeDevToken(tok string) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(home, ".clusterd-token")
	return path, os.WriteFile(path, []byte(tok+"\n"), 0o600)
}
