package lab_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/test/lab"
)

func TestPartitionHeal(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2, Client: true})
	n1, n2, c := l.Node(1), l.Node(2), l.Client()
	if err := n1.Partition(c); err != nil {
		t.Fatal(err)
	}
	unreachable(t, c, n1)
	unreachable(t, n1, c)
	reach(t, c, n2)  // the client's other links work
	reach(t, n1, n2) // and so do n1's
	if err := n1.Heal(); err != nil {
		t.Fatal(err)
	}
	reach(t, c, n1)
	reach(t, n1, c)
}

func TestLoss(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	ctx := context.Background()
	if err := n1.Loss(30); err != nil {
		t.Fatal(err)
	}
	rules, err := l.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`iifname "n1" numgen random mod 100 < 30 drop`,
		`oifname "n1" numgen random mod 100 < 30 drop`,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("after Loss(30), nft list has no %q:\n%s", want, rules)
		}
	}
	if err := n1.Loss(100); err != nil {
		t.Fatal(err)
	}
	unreachable(t, n2, n1)
	if err := n1.Loss(0); err != nil {
		t.Fatal(err)
	}
	if rules, err := l.Rules(ctx); err != nil || strings.Contains(rules, "numgen") {
		t.Errorf("after Loss(0): nft list = %q, %v; want no numgen rule", rules, err)
	}
	reach(t, n2, n1)
	if err := n1.Loss(101); err == nil {
		t.Errorf("Loss(101) = nil, want an error")
	}
	if err := l.Switch().Loss(10); err == nil {
		t.Errorf("Loss on the switch = nil, want an error")
	}
}

func TestLinkDownUp(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	n1, c := l.Node(1), l.Client()
	if err := n1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	nh, err := n1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
		t.Errorf("after LinkDown, eth0 in %s still has carrier", n1.Name)
	}
	unreachable(t, c, n1)
	if err := n1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	reach(t, c, n1)
}
