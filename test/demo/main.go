// Command demo runs clusterd's README demo: a three-node cluster in a namespace lab,
// a cluster address that a client reaches, a graceful move, and a failover after the
// holder's agent is killed, each step printed with its timing. It cleans up after
// itself, also on Ctrl-C.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/clusterd/clusterd/test/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	bin := os.Getenv("CLUSTERD_BIN")
	if bin == "" {
		return fmt.Errorf("set CLUSTERD_BIN to a built clusterd binary (scripts/demo does)")
	}
	return cluster.Demo(ctx, bin, out)
}
