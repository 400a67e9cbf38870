package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// testCA makes a CA and signs node certificates for the lab's addresses.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: dir}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// node signs a certificate for ip (server and client use) and returns cert and key paths.
func (ca *testCA) node(t *testing.T, name string, ip net.IP) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{ip, net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, keyPath := filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return cert, keyPath
}

// TestMutualTLS: three nodes with certificates from one CA form a cluster over TLS
// (raft and the API); the CLI talks https with the CA; a node whose certificate
// comes from another CA cannot join.
func TestMutualTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := lab.New(t, lab.Options{Nodes: 4, Client: true})
	ca := newTestCA(t, dir, "clusterd test CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := cluster.New(l, bin, dir)
	c.TLS = &tls.Config{RootCAs: pool}
	c.CAFile = filepath.Join(dir, "ca.pem")
	extra := func(i int, signer *testCA) cluster.Options {
		cert, key := signer.node(t, fmt.Sprintf("n%d", i), l.Node(i).Addr.Addr().AsSlice())
		return cluster.Options{Extra: fmt.Sprintf("tls_ca = %q\ntls_cert = %q\ntls_key = %q\n", filepath.Join(dir, "ca.pem"), cert, key)}
	}
	first, err := c.Start(ctx, 1, "", extra(1, ca))
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		if _, err := c.Start(ctx, i, first.URL(), extra(i, ca)); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(first.URL(), "https://") {
		t.Fatalf("agent URL %s is not https", first.URL())
	}
	if _, err := c.CLI(ctx, first, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0"); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitStatus(ctx, first, 10*time.Second, func(st api.Status) bool { return len(st.Nodes) == 3 && cluster.Owners(st)["web"] != "" })
	if err != nil {
		t.Fatalf("TLS cluster: %v (%+v)", err, st)
	}
	// Plain HTTP to a TLS API gets nowhere.
	plain := c.HTTP(first.Host, 2*time.Second)
	plain.Transport.(*http.Transport).TLSClientConfig = nil
	if resp, err := plain.Get("http://" + first.APIAddr() + "/v1/status"); err == nil && resp.StatusCode == 200 {
		t.Errorf("plain HTTP to the TLS API answered 200")
	}

	// A node with a certificate from another CA. It trusts the cluster's CA, so only
	// the cluster's side can refuse it: the API's handshake rejects its certificate.
	rogueDir := t.TempDir()
	rogue := newTestCA(t, rogueDir, "rogue CA")
	cert, key := rogue.node(t, "n4", l.Node(4).Addr.Addr().AsSlice())
	_, err = c.Start(ctx, 4, first.URL(), cluster.Options{Extra: fmt.Sprintf("tls_ca = %q\ntls_cert = %q\ntls_key = %q\njoin_timeout = \"3s\"\n", filepath.Join(dir, "ca.pem"), cert, key)})
	if err == nil {
		t.Fatalf("a node with a certificate from another CA joined")
	}
	log, _ := os.ReadFile(logOf(err))
	t.Logf("rogue node refused: %s", lastLine(string(log)))
	st, _ = c.Client(first).Status(ctx)
	if len(st.Nodes) != 3 {
		t.Fatalf("the rogue node got into the node list: %+v", st.Nodes)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
