package consensus

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	r := Resource{Name: "web", Address: netip.MustParsePrefix("2001:2::10/64"), Interface: "eth0",
		NetBIOS: &NetBIOS{Names: []string{"WEB<20>"}, WINS: []netip.Addr{netip.MustParseAddr("198.18.0.2")}}}
	for _, c := range []Command{
		PutNode(Node{ID: "n1", RaftAddr: "192.0.2.1:7000", Labels: map[string]string{"rack": "a"}}),
		RemoveNode("n1"),
		SetDraining("n1", true),
		PutResource(r),
		CreateResource(r),
		ApplyResources([]Resource{r, r}),
		DeleteResource("a", "b"),
		Assign(Assignment{Resource: "web", Node: "n1", Manual: true}),
		Unassign("web"),
		AssignMoves([]Move{{Resource: "web", To: "n2"}}, 42),
		SetMaintenance(true, "network work"),
		SetMaintenance(false, ""),
		RestoreState(StateDocument{State: State{Resources: map[string]Resource{"web": r}}}),
	} {
		data, err := c.encode()
		if err != nil {
			t.Fatalf("encode %+v: %v", c, err)
		}
		got, err := decodeCommand(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", data, got, c)
		}
	}
}

func TestCommandValidate(t *testing.T) {
	good := Resource{Name: "web", Address: netip.MustParsePrefix("198.18.1.10/24"), Interface: "eth0"}
	bad := good
	bad.Interface = ""
	tests := []struct {
		name    string
		cmd     Command
		wantErr bool
		is      error
	}{
		{name: "put resource", cmd: PutResource(good)},
		{name: "put bad resource", cmd: PutResource(bad), wantErr: true},
		{name: "apply with one bad", cmd: ApplyResources([]Resource{good, bad}), wantErr: true},
		{name: "put two resources", cmd: Command{Version: 1, Op: OpPutResource, Resources: []Resource{good, good}}, wantErr: true},
		{name: "newer version", cmd: Command{Version: CommandVersion + 1, Op: OpPutNode, Node: &Node{ID: "n1"}}, wantErr: true, is: ErrUnsupportedCommand},
		{name: "unknown op", cmd: Command{Version: 1, Op: "frobnicate"}, wantErr: true, is: ErrUnsupportedCommand},
		{name: "put node without node", cmd: Command{Version: 1, Op: OpPutNode}, wantErr: true},
		{name: "node id with space", cmd: RemoveNode("n 1"), wantErr: true},
		{name: "empty node id", cmd: SetDraining("", true), wantErr: true},
		{name: "delete empty name", cmd: DeleteResource(""), wantErr: true},
		{name: "assign without resource", cmd: Assign(Assignment{Node: "n1"}), wantErr: true},
		{name: "unassign by assign", cmd: Assign(Assignment{Resource: "web"})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate()
			if (err != nil) != tc.wantErr || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("Validate(%+v): got %v, want error %v (%v)", tc.cmd, err, tc.wantErr, tc.is)
			}
		})
	}
}
