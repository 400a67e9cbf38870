package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// startFails starts node i with opts and join and expects the agent to exit with a
// message containing want.
func startFails(t *testing.T, c *cluster.Cluster, i int, join string, opts cluster.Options, want string) {
	t.Helper()
	_, err := c.Start(context.Background(), i, join, opts)
	if err == nil {
		t.Fatalf("node %d started; want it refused with %q", i, want)
	}
	log, _ := os.ReadFile(logOf(err))
	if !strings.Contains(err.Error()+string(log), want) {
		t.Fatalf("node %d refused, but not with %q: %v\n%s", i, want, err, log)
	}
}

// logOf pulls the log path out of the harness's "exited while starting" error.
func logOf(err error) string {
	s := err.Error()
	i := strings.LastIndex(s, "(log ")
	if i < 0 {
		return ""
	}
	return strings.TrimSuffix(s[i+5:], ")")
}

func TestJoinRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := lab.New(t, lab.Options{Nodes: 4, Client: true})
	c := cluster.New(l, bin, dir)
	if err := c.Bootstrap(ctx, 2, cluster.Options{}); err != nil {
		t.Fatal(err)
	}
	n1 := c.Agent(1, cluster.Options{})

	// A peer that never answers: bounded retries, then a clear error.
	start := time.Now()
	startFails(t, c, 3, "http://198.18.0.250:7400", cluster.Options{Extra: "join_timeout = \"3s\"\n"}, "no answer after 3 attempts")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("join to a dead peer took %s to give up, want about 3 s", d)
	}

	// A duplicate node id: a join as n2 (alive) from another address.
	res, err := c.Client(n1).Join(ctx, api.JoinRequest{ID: "n2", RaftAddr: "198.18.0.104:7409", APIAddr: "198.18.0.104:7408", Voter: true})
	if err == nil || !strings.Contains(err.Error(), `node id "n2" is already in the cluster`) {
		t.Fatalf("join with a duplicate live id: got %+v, %v; want a refusal naming the id", res, err)
	}

	// A node bootstrapped on its own cannot then join another cluster.
	lone := c.Agent(3, cluster.Options{})
	if _, err := c.Start(ctx, 3, "", cluster.Options{}); err != nil { // its own one-node cluster
		t.Fatal(err)
	}
	if err := c.Kill(lone); err != nil {
		t.Fatal(err)
	}
	startFails(t, c, 3, n1.URL(), cluster.Options{}, "holds a separate one-node cluster")
}

func TestMemberLeaveAndApply(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := lab.New(t, lab.Options{Nodes: 4, Client: true})
	c := cluster.New(l, bin, dir)
	if err := c.Bootstrap(ctx, 3, cluster.Options{}); err != nil {
		t.Fatal(err)
	}
	n1 := c.Agent(1, cluster.Options{})
	// A fourth node joins as a member: it holds addresses but does not vote.
	if _, err := c.Start(ctx, 4, n1.URL(), cluster.Options{Member: true}); err != nil {
		t.Fatal(err)
	}
	out, err := c.CLI(ctx, n1, "nodes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "n4    up     member") {
		t.Fatalf("nodes does not show n4 as a member:\n%s", out)
	}

	// apply -f: eight resources, spread over four nodes; applying again changes nothing.
	file := dir + "/resources.toml"
	var b strings.Builder
	for i := 1; i <= 8; i++ {
		b.WriteString("[[resource]]\nname = \"r" + itoa(i) + "\"\naddress = \"198.18.1." + itoa(10+i) + "/16\"\ninterface = \"eth0\"\n\n")
	}
	os.WriteFile(file, []byte(b.String()), 0o644)
	out, err = c.CLI(ctx, n1, "apply", "-f", file)
	if err != nil || !strings.Contains(out, "8 created, 0 updated, 0 unchanged, 0 removed") {
		t.Fatalf("first apply: %v\n%s", err, out)
	}
	out, err = c.CLI(ctx, n1, "apply", "-f", file)
	if err != nil || !strings.Contains(out, "0 created, 0 updated, 8 unchanged, 0 removed") {
		t.Fatalf("second apply is not idempotent: %v\n%s", err, out)
	}
	st, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 8 })
	if err != nil {
		t.Fatal(err)
	}
	if got := load(cluster.Owners(st)); got["n4"] != 2 {
		t.Errorf("member n4 holds %d of 8 resources, want 2 (spread %v)", got["n4"], got)
	}
	// An unknown key in the file is refused with the key named.
	os.WriteFile(file, []byte("[[resource]]\nname = \"x\"\nadress = \"198.18.1.99/16\"\n"), 0o644)
	if out, err = c.CLI(ctx, n1, "apply", "-f", file); err == nil || !strings.Contains(out, `unknown key "resource.adress"`) {
		t.Errorf("apply with a misspelt key: %v\n%s", err, out)
	}

	// leave: n3 goes for good; its resources are placed elsewhere.
	n3 := c.Agent(3, cluster.Options{})
	if err := c.Kill(n3); err != nil {
		t.Fatal(err)
	}
	if out, err := c.CLI(ctx, n1, "leave", "n3"); err != nil {
		t.Fatalf("leave n3: %v\n%s", err, out)
	}
	st, err = c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool {
		o := cluster.Owners(st)
		return len(st.Nodes) == 3 && len(o) == 8 && load(o)["n3"] == 0
	})
	if err != nil {
		t.Fatalf("after leave: %v (%+v)", err, st)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
