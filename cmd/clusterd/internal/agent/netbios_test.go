package agent

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/netbios"
)

// newTestNB returns interfaces for resources on "lo" at an address the host does
// not have: every attach fails at bind (EADDRNOTAVAIL) without sending anything.
func newTestNB(t *testing.T) (*nbIfaces, consensus.State) {
	t.Helper()
	n := newNBIfaces(slog.New(slog.DiscardHandler), nil)
	st := consensus.NewState()
	st.Revision = 1
	r := nbResource("198.18.77.1/16", "A<00>", "A<20>")
	r.Interface = "lo"
	st.Resources["a"] = r
	return n, st
}

func TestNBSyncLeavesAttachToRun(t *testing.T) {
	n, st := newTestNB(t)
	n.Sync(st, map[string]bool{"a": true})
	rows, err := n.status("a")
	if err != nil || len(rows) != 2 || rows[0].State != "registering" || rows[1].State != "registering" {
		t.Fatalf("status before Run attached = %v, %v; want two names registering", rows, err)
	}
	n.detach([]string{"a"}, 0)
	if got := n.attachPending(); got != 0 {
		t.Errorf("attachPending after detach tried %d interfaces, want 0 (a detached resource is not attached any more)", got)
	}
	if rows, err := n.status("a"); rows != nil || err != nil {
		t.Errorf("status after detach = %v, %v; want nothing", rows, err)
	}
}

func TestNBAttachFailureAndWaitUp(t *testing.T) {
	n, st := newTestNB(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	n.onChange = func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		n.mu.Lock()
		up := n.ctx != nil
		n.mu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	n.Sync(st, map[string]bool{"a": true})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	n.waitUp(wctx, "a")
	if wctx.Err() != nil {
		t.Fatal("waitUp did not return within 5 s of the attach")
	}
	_, err := n.status("a")
	if !errors.Is(err, netbios.ErrAddressMissing) {
		t.Errorf("status after a failed attach: err = %v, want ErrAddressMissing (event 1044)", err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Error("no change notification within 5 s of the failed attach")
	}
	// Within the backoff the next Sync does not try again.
	n.Sync(st, map[string]bool{"a": true})
	n.mu.Lock()
	_, pending := n.pending["a"]
	n.mu.Unlock()
	if pending {
		t.Error("a failed attach is tried again within its backoff")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of its context ending")
	}
}
