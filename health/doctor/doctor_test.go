package doctor

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestWriteText(t *testing.T) {
	fs := []Finding{
		{Check: "capability", Severity: OK, Message: "capability CAP_NET_ADMIN present"},
		{Check: "sysctl", Severity: Info, Message: "promote_secondaries=0 on eth0", Fix: "not shown for info"},
		{Check: "interface", Severity: Warn, Message: "interface eth1 is down", Fix: "ip link set eth1 up"},
		{Check: "udp137", Severity: Fail, Message: "UDP 137 on 192.0.2.10: held", Fix: "stop it"},
	}
	var b bytes.Buffer
	if err := WriteText(&b, fs); err != nil {
		t.Fatal(err)
	}
	want := `[ok]   capability CAP_NET_ADMIN present
[info] promote_secondaries=0 on eth0
[warn] interface eth1 is down
       fix: ip link set eth1 up
[FAIL] UDP 137 on 192.0.2.10: held
       fix: stop it
1 blocking, 1 warnings: clusterd will not work on this node until the [FAIL] lines are fixed
`
	if got := b.String(); got != want {
		t.Errorf("WriteText:\n got %q\nwant %q", got, want)
	}
	b.Reset()
	WriteText(&b, fs[:2])
	if got := b.String(); got != "[ok]   capability CAP_NET_ADMIN present\n[info] promote_secondaries=0 on eth0\nnothing blocks\n" {
		t.Errorf("WriteText without problems = %q", got)
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, []Finding{{Check: "peer", Subject: "n2 raft", Severity: Fail, Message: "m", Fix: "f"}}); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("WriteJSON wrote %q: %v", b.String(), err)
	}
	f := got["findings"].([]any)[0].(map[string]any)
	if f["severity"] != "fail" || f["subject"] != "n2 raft" || got["blocking"] != 1.0 || got["warnings"] != 0.0 {
		t.Errorf("WriteJSON = %s", b.String())
	}
	b.Reset()
	WriteJSON(&b, nil)
	if !bytes.Contains(b.Bytes(), []byte(`"findings": []`)) {
		t.Errorf("WriteJSON(nil) = %s, want an empty list", b.String())
	}
}
