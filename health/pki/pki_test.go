package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(rand.Reader, name, now)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func node(name string, ips ...string) Node {
	n := Node{Name: name}
	for _, ip := range ips {
		n.IPs = append(n.IPs, netip.MustParseAddr(ip))
	}
	return n
}

func TestNewCA(t *testing.T) {
	ca := newCA(t, "clusterd CA")
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("CA constraints: IsCA %v, valid %v, MaxPathLen %d zero %v; want a CA with path length 0", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA key usage = %b, want cert sign | CRL sign", c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if got := c.NotAfter.Sub(now); got != CAValidity {
		t.Errorf("CA valid for %v after now, want %v", got, CAValidity)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if c.Subject.CommonName != "clusterd CA" || len(c.SubjectKeyId) != 20 {
		t.Errorf("CA subject %q, key id %x", c.Subject.CommonName, c.SubjectKeyId)
	}
}

func TestIssue(t *testing.T) {
	ca := newCA(t, "cluster one")
	n := Node{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.101"), netip.MustParseAddr("2001:2::101")}, DNS: []string{"n1.example.net"}}
	cert, key, err := ca.Issue(rand.Reader, n, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := Verify(ca.Cert, cert, usage, now); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "198.18.0.101,2001:2::101" {
		t.Errorf("IP SANs = %s", got)
	}
	if !slices.Equal(cert.DNSNames, []string{"n1.example.net"}) || cert.Subject.CommonName != "n1" {
		t.Errorf("DNS SANs %v, CN %q", cert.DNSNames, cert.Subject.CommonName)
	}
	for _, host := range []string{"198.18.0.101", "2001:2::101", "n1.example.net"} {
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%s): %v", host, err)
		}
	}
	if err := cert.VerifyHostname("198.18.0.102"); err == nil {
		t.Errorf("certificate for n1 verifies for 198.18.0.102")
	}
	if cert.IsCA || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("node certificate: IsCA %v, key usage %b; want a leaf for digital signatures", cert.IsCA, cert.KeyUsage)
	}
	if got := cert.NotAfter.Sub(now); got != NodeValidity {
		t.Errorf("node certificate valid for %v after now, want %v", got, NodeValidity)
	}
	if !key.PublicKey.Equal(cert.PublicKey) || key.Curve != elliptic.P256() {
		t.Errorf("key does not match the certificate, or is not P-256")
	}
	if err := Verify(ca.Cert, cert, x509.ExtKeyUsageServerAuth, now.Add(NodeValidity+time.Hour)); err == nil {
		t.Errorf("certificate verifies after it expired")
	}

	// A certificate from another CA does not verify.
	other := newCA(t, "cluster two")
	foreign, _, err := other.Issue(rand.Reader, n, now)
	if err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if err := Verify(ca.Cert, foreign, x509.ExtKeyUsageClientAuth, now); !errors.As(err, &unknown) {
		t.Errorf("certificate of another CA: Verify = %v, want x509.UnknownAuthorityError", err)
	}

	// A node certificate cannot sign another: it is not a CA.
	fake := &CA{Cert: cert, Key: key}
	leaf, _, err := fake.Issue(rand.Reader, node("n2", "198.18.0.102"), now)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	inter.AddCert(cert)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now}); err == nil {
		t.Errorf("a certificate signed by a node certificate verifies")
	}
}

func TestIssueCappedByCA(t *testing.T) {
	ca := newCA(t, "old")
	late := now.Add(CAValidity - 30*24*time.Hour)
	cert, _, err := ca.Issue(rand.Reader, node("n1", "198.18.0.101"), late)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("node certificate ends %v, want the CA's end %v", cert.NotAfter, ca.Cert.NotAfter)
	}
	_, _, err = ca.Issue(rand.Reader, node("n1", "198.18.0.101"), now.Add(CAValidity+time.Hour))
	if err == nil || !strings.Contains(err.Error(), "tls init --force") {
		t.Errorf("Issue with an expired CA = %v, want a refusal naming the fix", err)
	}
}

func TestNodeValidate(t *testing.T) {
	tests := []struct {
		n    Node
		want string
	}{
		{node("n1", "198.18.0.101"), ""},
		{Node{Name: "n1", DNS: []string{"n1.example.net", "*.nodes.example.net"}}, ""},
		{node("", "198.18.0.101"), "node name \"\""},
		{node("n 1", "198.18.0.101"), "node name \"n 1\""},
		{node("n1"), "no --ip or --dns"},
		{node("n1", "0.0.0.0"), "IP 0.0.0.0"},
		{Node{Name: "n1", DNS: []string{"bad_name"}}, "DNS name \"bad_name\""},
		{Node{Name: "n1", DNS: []string{"-x.example"}}, "DNS name \"-x.example\""},
	}
	for _, tt := range tests {
		err := tt.n.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.n, err, tt.want)
		}
	}
}

// TestMutualTLS runs handshakes over an in-memory pipe: nodes of one CA
// authenticate each other both ways; a node of another CA is refused.
func TestMutualTLS(t *testing.T) {
	// Handshakes check validity at the real time, so these CAs start now.
	ca, err := NewCA(rand.Reader, "cluster one", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA(rand.Reader, "cluster two", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pair := func(ca *CA, n Node) tls.Certificate {
		cert, key, err := ca.Issue(rand.Reader, n, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	server := pair(ca, node("n1", "198.18.0.101"))
	tests := []struct {
		name   string
		client tls.Certificate
		ok     bool
	}{
		{"same CA", pair(ca, node("n2", "198.18.0.102")), true},
		{"other CA", pair(other, node("n2", "198.18.0.102")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			deadline := time.Now().Add(10 * time.Second)
			c1.SetDeadline(deadline)
			c2.SetDeadline(deadline)
			srv := tls.Server(c1, &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13})
			cli := tls.Client(c2, &tls.Config{Certificates: []tls.Certificate{tt.client}, RootCAs: pool, ServerName: "198.18.0.101", MinVersion: tls.VersionTLS13})
			errc := make(chan error, 1)
			go func() {
				// The server's handshake ends after it verified the client's
				// certificate; then it says one byte.
				err := srv.Handshake()
				if err == nil {
					_, err = srv.Write([]byte{1})
				}
				errc <- err
			}()
			// The client reads the byte, or the server's alert.
			cerr := cli.Handshake()
			if cerr == nil {
				_, cerr = cli.Read(make([]byte, 1))
			}
			serr := <-errc
			c1.Close()
			c2.Close()
			if tt.ok && (cerr != nil || serr != nil) {
				t.Errorf("handshake failed: client %v, server %v", cerr, serr)
			}
			if !tt.ok && (serr == nil || cerr == nil) {
				t.Errorf("a client certificate from another CA: server %v, client %v; want both to fail", serr, cerr)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca := newCA(t, "cluster")
	if err := WriteCA(dir, ca, false); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := CAFiles(dir)
	for path, want := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600, dir: 0o700 | os.ModeDir} {
		st, err := os.Stat(path)
		if err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, st.Mode(), err, want)
		}
	}
	if err := WriteCA(dir, newCA(t, "second"), false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second WriteCA without force = %v, want ErrExists naming --force", err)
	}
	loaded, err := LoadCA(dir)
	if err != nil || !loaded.Cert.Equal(ca.Cert) {
		t.Fatalf("LoadCA = %v, %v; want the CA just written", loaded, err)
	}

	cert, key, err := loaded.Issue(rand.Reader, node("n1", "198.18.0.101"), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteNode(dir, "n1", cert, key, false); err != nil {
		t.Fatal(err)
	}
	nc, nk := NodeFiles(dir, "n1")
	if st, err := os.Stat(nk); err != nil || st.Mode() != 0o600 {
		t.Errorf("%s: mode %v, %v; want 0600", nk, st.Mode(), err)
	}
	if _, err := tls.LoadX509KeyPair(nc, nk); err != nil {
		t.Errorf("tls.LoadX509KeyPair(%s, %s): %v", nc, nk, err)
	}
	// Only the key exists: still refused, and the certificate is not written.
	os.Remove(nc)
	if err := WriteNode(dir, "n1", cert, key, false); !errors.Is(err, ErrExists) {
		t.Errorf("WriteNode over an existing key = %v, want ErrExists", err)
	}
	if _, err := os.Stat(nc); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused WriteNode wrote %s", nc)
	}

	// --force replaces both, keeping the modes.
	second := newCA(t, "second")
	if err := WriteCA(dir, second, true); err != nil {
		t.Fatal(err)
	}
	if loaded, err := LoadCA(dir); err != nil || !loaded.Cert.Equal(second.Cert) {
		t.Errorf("after WriteCA with force, LoadCA = %v, %v; want the new CA", loaded, err)
	}
	if st, err := os.Stat(keyPath); err != nil || st.Mode() != 0o600 {
		t.Errorf("replaced %s: mode %v, %v; want 0600", keyPath, st.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("directory holds %d files after replacing, want 3 (no temporary files left)", len(ents))
	}
}

func TestLoadCARefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "clusterd tls init --dir") {
		t.Errorf("LoadCA(empty dir) = %v, want the fix", err)
	}
	a, b := newCA(t, "a"), newCA(t, "b")
	certPath, keyPath := CAFiles(dir)
	os.WriteFile(certPath, EncodeCert(a.Cert), 0o644)
	kb, _ := EncodeKey(b.Key)
	os.WriteFile(keyPath, kb, 0o600)
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("LoadCA(mismatched key) = %v", err)
	}
	leaf, leafKey, _ := a.Issue(rand.Reader, node("n1", "198.18.0.101"), now)
	os.WriteFile(certPath, EncodeCert(leaf), 0o644)
	kb, _ = EncodeKey(leafKey)
	os.WriteFile(keyPath, kb, 0o600)
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("LoadCA(node certificate) = %v", err)
	}
	os.WriteFile(certPath, []byte("junk"), 0o644)
	if _, err := LoadCA(dir); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Errorf("LoadCA(junk) = %v", err)
	}
}
