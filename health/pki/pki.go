// Package pki makes the certificates for mutual TLS between clusterd nodes
// (`clusterd tls`): one CA per cluster and, per node, a certificate valid for both
// server and client authentication, so the same pair serves the node's raft and API
// listeners and authenticates it when it calls the others. Keys are ECDSA P-256
// (RFC 5480), certificates X.509 v3 (RFC 5280).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/netip"
	"regexp"
	"time"
)

// Validity periods: a CA outlives many node certificates; node certificates are
// renewed with the hardware or OS they run on.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 2 * 365 * 24 * time.Hour
	// backdate covers clocks a little behind the one that signed.
	backdate = time.Hour
)

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA named name, valid from now for CAValidity. It may
// sign end-entity certificates only (path length 0).
func NewCA(rnd io.Reader, name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := serialNumber(rnd)
	if err != nil {
		return nil, err
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"clusterd"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Node says whom a node certificate is for.
type Node struct {
	Name string       // the node id; the certificate's common name
	IPs  []netip.Addr // addresses other nodes dial (raft_addr and api_addr hosts)
	DNS  []string     // DNS names other nodes dial
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// dnsRe is a host name of letter-digit-hyphen labels (RFC 1123), optionally with a
// leading wildcard label.
var dnsRe = regexp.MustCompile(`^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// Validate checks the name and that the certificate will name at least one
// address or DNS name to verify against.
func (n Node) Validate() error {
	var errs []error
	if !nameRe.MatchString(n.Name) {
		errs = append(errs, fmt.Errorf("node name %q is not valid (1-63 characters: letters, digits, '-', '_', '.'; use the node's node_id)", n.Name))
	}
	if len(n.IPs) == 0 && len(n.DNS) == 0 {
		errs = append(errs, fmt.Errorf("no --ip or --dns for %s: give the addresses the other nodes reach it on (the hosts of its raft_addr and api_addr)", n.Name))
	}
	for _, ip := range n.IPs {
		if !ip.IsValid() || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("IP %v cannot be a certificate's address (give the node's own address)", ip))
		}
	}
	for _, d := range n.DNS {
		if len(d) > 253 || !dnsRe.MatchString(d) {
			errs = append(errs, fmt.Errorf("DNS name %q is not a host name", d))
		}
	}
	return errors.Join(errs...)
}

// Issue makes a key and a certificate for n signed by ca, valid from now for
// NodeValidity (never past the CA's own expiry), for server and client auth.
func (ca *CA) Issue(rnd io.Reader, n Node, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if err := n.Validate(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key for %s: %w", n.Name, err)
	}
	serial, err := serialNumber(rnd)
	if err != nil {
		return nil, nil, err
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(NodeValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("the CA %q expired on %s: make a new one with `clusterd tls init --force` and reissue every node", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.Format(time.DateOnly))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: n.Name, Organization: []string{"clusterd"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              n.DNS,
		SubjectKeyId:          skid,
		AuthorityKeyId:        ca.Cert.SubjectKeyId,
	}
	for _, ip := range n.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.Unmap().AsSlice())
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", n.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// Verify checks that cert was issued by ca for the given usage at time now.
func Verify(ca, cert *x509.Certificate, usage x509.ExtKeyUsage, now time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// serialNumber is a random positive 128-bit serial (RFC 5280 allows up to 20 octets).
func serialNumber(rnd io.Reader) (*big.Int, error) {
	n, err := rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// keyID is the SHA-1 of the public key's bytes (RFC 5280 4.2.1.2, method 1).
func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	b, err := pub.Bytes()
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(b)
	return sum[:], nil
}

// EncodeCert is the PEM form of a certificate.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// EncodeKey is the PEM form (PKCS #8) of a private key.
func EncodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCert reads one PEM certificate.
func ParseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// ParseKey reads one PEM ECDSA private key (PKCS #8 or SEC 1).
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the key is a %T, not ECDSA", k)
		}
		return ek, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
}
