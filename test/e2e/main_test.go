// Package e2e runs real clusterd agents in namespace labs and checks the result with
// netlink and real clients (ping, TCP, ARP).
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/clusterd/clusterd/test/cluster"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clusterd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = cluster.Binary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
