package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/health/pki"
)

const tlsHelp = `Usage:
  clusterd tls init --dir DIR [--name NAME] [--force]
  clusterd tls node --dir DIR --name NODE --ip IP [--ip IP ...] [--dns NAME ...] [--force]

Makes the certificates for mutual TLS between nodes (ECDSA P-256):

  init  a cluster CA: DIR/ca.pem and DIR/ca-key.pem (mode 0600), valid 10 years.
  node  a certificate for NODE, valid 2 years for both server and client auth,
        signed by the CA in DIR: DIR/NODE.pem and DIR/NODE-key.pem (mode 0600).
        Its addresses (--ip, --dns) are those the other nodes and the CLI dial:
        the hosts of the node's raft_addr and api_addr; add --ip 127.0.0.1 to
        call its API on loopback over HTTPS.

Give each node ca.pem, NODE.pem and NODE-key.pem (--tls-ca, --tls-cert, --tls-key,
or tls_ca, tls_cert, tls_key in its config); keep ca-key.pem off the nodes. A node
with a certificate from another CA cannot join or speak raft. Existing files are
never replaced without --force.

Examples:
  clusterd tls init --dir /root/clusterd-ca
  clusterd tls node --dir /root/clusterd-ca --name n1 --ip 198.18.0.101
  scp /root/clusterd-ca/{ca.pem,n1.pem,n1-key.pem} n1:/etc/clusterd/tls/`

func runTLS(_ context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("tls needs a subcommand: init or node (see `clusterd tls --help`)")
	}
	switch args[0] {
	case "init":
		return runTLSInit(g, args[1:])
	case "node":
		return runTLSNode(g, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(g.stdout, tlsHelp)
		return errHelp
	}
	return usagef("unknown tls subcommand %q (use init or node)", args[0])
}

func runTLSInit(g *globals, args []string) error {
	fs := newFlags(g, "tls init", tlsHelp)
	dir := fs.String("dir", "", "`DIR` to write ca.pem and ca-key.pem to (created 0700)")
	name := fs.String("name", "clusterd CA", "the CA's common `NAME`")
	force := fs.Bool("force", false, "replace existing files (every node certificate must then be reissued)")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *dir == "" {
		return usagef("usage: clusterd tls init --dir DIR [--name NAME] [--force]")
	}
	ca, err := pki.NewCA(rand.Reader, *name, time.Now())
	if err != nil {
		return err
	}
	if err := pki.WriteCA(*dir, ca, *force); err != nil {
		return err
	}
	cert, key := pki.CAFiles(*dir)
	if g.json() {
		return printJSON(g, map[string]string{"ca": cert, "ca_key": key, "not_after": ca.Cert.NotAfter.Format(time.RFC3339)})
	}
	g.printf("wrote %s and %s (CA %q, valid until %s)\n", cert, key, *name, ca.Cert.NotAfter.Format(time.DateOnly))
	g.printf("next: clusterd tls node --dir %s --name NODE --ip NODE_IP, for every node\n", *dir)
	return nil
}

func runTLSNode(g *globals, args []string) error {
	fs := newFlags(g, "tls node", tlsHelp)
	dir := fs.String("dir", "", "`DIR` that holds the CA (ca.pem, ca-key.pem); the node's files go there too")
	var n pki.Node
	fs.StringVar(&n.Name, "name", "", "the node's `ID` (its node_id); the certificate's common name and file name")
	var ips, dns listFlag
	fs.Var(&ips, "ip", "an `IP` address other nodes reach this node on (repeatable)")
	fs.Var(&dns, "dns", "a DNS `NAME` other nodes reach this node by (repeatable)")
	force := fs.Bool("force", false, "replace an existing certificate and key for the node")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *dir == "" || n.Name == "" {
		return usagef("usage: clusterd tls node --dir DIR --name NODE --ip IP [--ip IP ...] [--dns NAME ...] [--force]")
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return usagef("--ip %q is not an IP address (e.g. --ip 198.18.0.101)", s)
		}
		n.IPs = append(n.IPs, ip)
	}
	n.DNS = dns
	if err := n.Validate(); err != nil {
		return usagef("%v", err)
	}
	ca, err := pki.LoadCA(*dir)
	if err != nil {
		return err
	}
	cert, key, err := ca.Issue(rand.Reader, n, time.Now())
	if err != nil {
		return err
	}
	if err := pki.WriteNode(*dir, n.Name, cert, key, *force); err != nil {
		return err
	}
	certPath, keyPath := pki.NodeFiles(*dir, n.Name)
	caPath, _ := pki.CAFiles(*dir)
	if g.json() {
		return printJSON(g, map[string]string{"cert": certPath, "key": keyPath, "ca": caPath, "not_after": cert.NotAfter.Format(time.RFC3339)})
	}
	g.printf("wrote %s and %s (node %s, valid until %s)\n", certPath, keyPath, n.Name, cert.NotAfter.Format(time.DateOnly))
	g.printf("on %s: clusterd agent ... --tls-ca ca.pem --tls-cert %s.pem --tls-key %s-key.pem\n", n.Name, n.Name, n.Name)
	return nil
}
