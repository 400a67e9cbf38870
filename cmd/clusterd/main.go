// Command clusterd is the cluster daemon (`clusterd agent`), the failover CLI
// (`clusterd status | move | drain | ...`) and, through the agent, the health
// endpoint. See `clusterd --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes, documented in `clusterd --help`.
const (
	exitOK          = 0
	exitFailure     = 1 // the operation failed (API error, agent error)
	exitUsage       = 2 // bad command line
	exitUnreachable = 3 // no API answered
)

// usageError marks a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errHelp is returned after help was printed on request.
var errHelp = errors.New("help shown")

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return exitUsage
	case errors.Is(err, errUnreachable):
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return exitUnreachable
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "clusterd: %v\n", err)
	return exitFailure
}

// exitError carries an exit code whose message was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
