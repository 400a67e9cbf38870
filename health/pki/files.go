package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrExists means a file would be overwritten without force.
var ErrExists = errors.New("file exists")

// CAFiles are the CA's certificate and key in dir.
func CAFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

// NodeFiles are a node's certificate and key in dir.
func NodeFiles(dir, name string) (cert, key string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

// WriteCA writes ca.pem (0644) and ca-key.pem (0600) to dir, creating dir (0700)
// if needed. Existing files are an ErrExists error unless force.
func WriteCA(dir string, ca *CA, force bool) error {
	cert, key := CAFiles(dir)
	return writePair(dir, cert, EncodeCert(ca.Cert), key, ca.Key, force)
}

// WriteNode writes NAME.pem (0644) and NAME-key.pem (0600) to dir. Existing files
// are an ErrExists error unless force.
func WriteNode(dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey, force bool) error {
	c, k := NodeFiles(dir, name)
	return writePair(dir, c, EncodeCert(cert), k, key, force)
}

func writePair(dir, certPath string, certPEM []byte, keyPath string, key *ecdsa.PrivateKey, force bool) error {
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !force {
		// Check both first, so a refusal leaves no half-written pair.
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				return fmt.Errorf("%s: %w (give --force to replace it, after making sure nothing uses it)", p, ErrExists)
			}
		}
	}
	if err := writeFile(keyPath, keyPEM, 0o600, force); err != nil {
		return err
	}
	return writeFile(certPath, certPEM, 0o644, force)
}

// writeFile creates path with mode; with replace it writes a temporary file and
// renames it over path, so a reader sees the old or the new file, never a torn one.
func writeFile(path string, b []byte, mode os.FileMode, replace bool) error {
	if !replace {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w (give --force to replace it)", path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_, err = f.Write(b)
		return closeAfter(f, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", f.Name(), err)
	}
	_, err = f.Write(b)
	if err := closeAfter(f, err); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// closeAfter syncs and closes f after a write that returned err.
func closeAfter(f *os.File, err error) error {
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// LoadCA reads ca.pem and ca-key.pem from dir and checks that they belong
// together and that the certificate is a CA.
func LoadCA(dir string) (*CA, error) {
	certPath, keyPath := CAFiles(dir)
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificate: %w (make one with `clusterd tls init --dir %s`)", err, dir)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w (node certificates are made where the CA key is)", err)
	}
	cert, err := ParseCert(cb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := ParseKey(kb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certPath)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s (they come from different `tls init` runs)", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key}, nil
}
