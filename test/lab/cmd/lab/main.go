// Command lab builds and removes clusterd's network-namespace lab by hand; it is what
// scripts/lab runs. See `lab --help` and test/lab/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"

	"github.com/clusterd/clusterd/test/lab"
)

const usage = `usage: scripts/lab COMMAND [FLAGS]

Build clusterd's test network by hand: network namespaces joined by a bridge in a
"switch" namespace, addresses from 198.18.0.0/15 and 2001:2::/48 only. Needs root.
The host's own interfaces are never touched.

Commands:
  up [--nodes N] [--client=false] [--wins]
        create a manual lab and print its namespaces and addresses. It stays until
        'scripts/lab down': tests never remove a manual lab (cdlab-m-...).
  down [--all] [ID...]
        remove manual labs and the labs of test processes that have exited, killing
        the processes inside them. With IDs, remove only those labs. --all also
        removes the labs of running tests (they will fail).
  list  show every lab on this host, its owner and its namespaces.

Addresses (every host on eth0, broadcast 198.18.255.255):
  wins 198.18.0.1/16 2001:2::1/64    client 198.18.0.2/16 2001:2::2/64
  node i 198.18.0.(100+i)/16 2001:2::(100+i)/64

Examples:
  sudo scripts/lab up --nodes 3 --wins
  sudo ip netns exec cdlab-m-1a2b-client ping 198.18.0.101
  sudo scripts/lab down
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var u usageError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "lab: %v\n\n%s", err, usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a mistake in the command line; main prints the usage after it.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"no command"}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "up", "down", "list":
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nodes := fs.Int("nodes", 3, "number of nodes")
	client := fs.Bool("client", true, "add the client namespace")
	wins := fs.Bool("wins", false, "add the WINS namespace")
	all := fs.Bool("all", false, "down: also remove labs of running tests")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, err := io.WriteString(stdout, usage)
			return err
		}
		return usageError{err.Error()}
	}
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root: run it with sudo")
	}
	switch cmd {
	case "up":
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("up takes no arguments, got %q", fs.Args())}
		}
		return up(ctx, lab.Options{Nodes: *nodes, Client: *client, WINS: *wins, Manual: true}, stdout)
	case "down":
		return down(*all, fs.Args(), stdout)
	default:
		if fs.NArg() > 0 {
			return usageError{fmt.Sprintf("list takes no arguments, got %q", fs.Args())}
		}
		return list(stdout)
	}
}

func up(ctx context.Context, opts lab.Options, stdout io.Writer) error {
	l, err := lab.Create(ctx, opts)
	if err != nil {
		return err
	}
	// No Close: a manual lab outlives this process. Its namespace handles close
	// when the process exits.
	fmt.Fprintf(stdout, "lab %s: stays until `scripts/lab down`\n\n", l.ID())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tLINK\tIPV4\tIPV6\tMAC")
	sw := l.Switch()
	fmt.Fprintf(tw, "%s\t%s\t\t\t\n", sw.Name, sw.Link)
	for _, h := range l.Hosts() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Link, h.Addr, h.Addr6, h.MAC)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hosts := l.Hosts(); l.Client() != nil && len(hosts) > 1 {
		fmt.Fprintf(stdout, "\ntry: ip netns exec %s ping -c1 %s\n", l.Client().Name, hosts[len(hosts)-1].Addr.Addr())
	}
	return nil
}

func down(all bool, ids []string, stdout io.Writer) error {
	infos, err := lab.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range infos {
		wanted := len(ids) == 0 && (all || in.Manual() || in.Stale())
		for _, id := range ids {
			wanted = wanted || id == in.ID
		}
		if !wanted {
			continue
		}
		if err := lab.Remove(in.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "removed lab %s (%s, %d namespaces)\n", in.ID, state(in), len(in.Namespaces))
	}
	return errors.Join(errs...)
}

func list(stdout io.Writer) error {
	infos, err := lab.List()
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		_, err := fmt.Fprintln(stdout, "no labs")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tNAMESPACES")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", in.ID, state(in), strings.Join(in.Namespaces, " "))
	}
	return tw.Flush()
}

// state says who owns a lab and what `down` does with it.
func state(in lab.Info) string {
	switch {
	case in.Manual():
		return "manual"
	case in.Owner < 0:
		return "unknown owner (down --all)"
	case in.Stale():
		return fmt.Sprintf("stale: pid %d exited", in.Owner)
	default:
		return fmt.Sprintf("pid %d running", in.Owner)
	}
}
