package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadPhases(t *testing.T) {
	dir := t.TempDir()
	leader := `time=2026-11-21T19:42:07.051Z level=INFO msg="failover of 1 resources from n1: detected after 191ms without renewal, committed 2ms later" event=1201 node=n3 resource=web detected=2026-11-21T19:42:07.049937895Z committed=2026-11-21T19:42:07.051643509Z last_renewal=2026-11-21T19:42:06.858944816Z` + "\n"
	holder := `time=2026-11-21T19:42:06.663Z level=INFO msg="resource web online here: address up 19ms after the assignment was seen, first announcement 500µs later" event=1201 node=n2 resource=web assigned=2026-11-21T19:42:06.644454781Z address_up=2026-11-21T19:42:06.663318502Z first_announcement=2026-11-21T19:42:06.663818502Z
time=2026-11-21T19:42:07.101Z level=INFO msg="resource web online here: address up 36ms after the assignment was seen, first announcement 500µs later" event=1201 node=n2 resource=web assigned=2026-11-21T19:42:07.064938125Z address_up=2026-11-21T19:42:07.101052803Z first_announcement=2026-11-21T19:42:07.101552875Z
`
	os.WriteFile(filepath.Join(dir, "n3-clusterd-3.log"), []byte(leader), 0o644)
	os.WriteFile(filepath.Join(dir, "n2-clusterd-2.log"), []byte(holder), 0o644)
	got := readPhases(dir)
	want := Phases{DetectMS: 190.993, CommitMS: 1.705, ApplyMS: 13.294, UpMS: 36.114}
	if got == nil || *got != want {
		t.Fatalf("readPhases: got %+v, want %+v (the holder's earlier, pre-fault timeline must be skipped)", got, want)
	}
	if got := readPhases(t.TempDir()); got != nil {
		t.Errorf("readPhases of a directory without logs: got %+v, want nil", got)
	}
}
