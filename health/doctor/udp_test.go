package doctor

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Captured on this machine (Linux 6.x, amd64) with sockets bound to 127.0.0.1:5355,
// [::1]:5353 and [::ffff:127.0.0.1]:5354, plus a hand-made line for 0.0.0.0:137.
const (
	udp4Table = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
15642: 0100007F:14EB 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1451787 2 000000000bd5403c 0       
  137: 00000000:0089 00000000:0000 07 00000000:00000000 00:00000000 00000000   108        0 2000001 2 0000000000000000 0
`
	udp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
15640: 00000000000000000000000001000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1451785 2 00000000389c9046 0
15641: 0000000000000000FFFF00000100007F:14EA 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1451786 2 00000000b8a90c84 0
`
)

func TestParseSockets(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Fatalf("the captured vectors are little-endian; this test needs a little-endian machine")
	}
	tests := []struct {
		name  string
		table string
		want  []Socket
	}{
		{"udp", udp4Table, []Socket{
			{Local: netip.MustParseAddrPort("127.0.0.1:5355"), UID: 0, Inode: 1451787},
			{Local: netip.MustParseAddrPort("0.0.0.0:137"), UID: 108, Inode: 2000001},
		}},
		{"udp6", udp6Table, []Socket{
			{Local: netip.MustParseAddrPort("[::1]:5353"), UID: 0, Inode: 1451785},
			{Local: netip.MustParseAddrPort("[::ffff:127.0.0.1]:5354"), UID: 0, Inode: 1451786},
		}},
		{"header only", "  sl  local_address rem_address\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSockets(strings.NewReader(tt.table))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSockets:\n got %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseSocketsErrors(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"short", "0: 0100007F:14EB 00000000:0000 07", "line 1: 4 fields"},
		{"no port", "0: 0100007F 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0", "local_address: \"0100007F\" has no port"},
		{"odd address", "0: 0100007:14EB 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0", "not 8 or 32 hex digits"},
		{"bad port", "0: 0100007F:1G 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0 0", "port \"1G\""},
		{"bad uid", "0: 0100007F:14EB 00000000:0000 07 00000000:00000000 00:00000000 00000000 x 0 1 2 0 0", "uid \"x\""},
		{"bad inode", "0: 0100007F:14EB 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 -1 2 0 0", "inode \"-1\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSockets(strings.NewReader(tt.line))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseSockets(%q) error = %v, want one containing %q", tt.line, err, tt.want)
			}
		})
	}
}

func FuzzParseSockets(f *testing.F) {
	f.Add(udp4Table)
	f.Add(udp6Table)
	f.Add("0: 00000000:0089 00000000:0000 07 0 0 0 0 0 0")
	f.Fuzz(func(t *testing.T, table string) {
		socks, err := ParseSockets(strings.NewReader(table))
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Local.Addr().IsValid() {
				t.Fatalf("ParseSockets(%q) returned an invalid address: %+v", table, s)
			}
		}
	})
}

func TestSocketInode(t *testing.T) {
	tests := []struct {
		target string
		want   uint64
		ok     bool
	}{
		{"socket:[1451787]", 1451787, true},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[1451787]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	}
	for _, tt := range tests {
		got, ok := SocketInode(tt.target)
		if got != tt.want || ok != tt.ok {
			t.Errorf("SocketInode(%q) = %d, %v; want %d, %v", tt.target, got, ok, tt.want, tt.ok)
		}
	}
}

// TestSocketOwners builds a fake /proc with fd links and checks which process each
// socket inode is attributed to.
func TestSocketOwners(t *testing.T) {
	proc := t.TempDir()
	bin := t.TempDir()
	for _, name := range []string{"nmbd", "clusterd", "clusterd-v2", "doctor"} {
		os.WriteFile(filepath.Join(bin, name), []byte(name), 0o755)
	}
	procs := []struct {
		pid, comm, exe string
		links          []string
	}{
		{"42", "nmbd", "nmbd", []string{"/dev/null", "socket:[100]", "pipe:[7]"}},
		{"43", "nmbd", "nmbd", []string{"socket:[100]"}}, // the same socket after fork
		{"77", "clusterd", "clusterd", []string{"socket:[200]", "socket:[300]"}},
		{"78", "clusterd-v2", "clusterd-v2", []string{"socket:[400]"}}, // a build with a suffix
		{"79", "cd", "doctor", []string{"socket:[500]"}},               // renamed, but the same executable as self
		{"self", "doctor", "doctor", []string{"socket:[100]"}},         // not a pid
	}
	for _, p := range procs {
		if err := os.MkdirAll(filepath.Join(proc, p.pid), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Symlink(filepath.Join(bin, p.exe), filepath.Join(proc, p.pid, "exe"))
		dir := filepath.Join(proc, p.pid, "fd")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(proc, p.pid, "comm"), []byte(p.comm+"\n"), 0o644)
		for i, l := range p.links {
			if err := os.Symlink(l, filepath.Join(dir, string(rune('0'+i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := SocketOwners(proc, map[uint64]bool{100: true, 300: true, 400: true, 500: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Process{
		100: {PID: 42, Comm: "nmbd"},
		300: {PID: 77, Comm: "clusterd", Clusterd: true},
		400: {PID: 78, Comm: "clusterd-v2", Clusterd: true},
		500: {PID: 79, Comm: "cd", Clusterd: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SocketOwners = %v, want %v", got, want)
	}
}
