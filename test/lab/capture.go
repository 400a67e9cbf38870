package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// captureStart bounds how long Capture waits for tcpdump to say it is listening.
const captureStart = 5 * time.Second

// Capture is a packet capture on the switch's bridge, written as a pcap file.
type Capture struct {
	*Proc        // tcpdump; Stop or Kill it, or let the lab stop it at Close
	Path  string // the pcap file
}

// Capture starts tcpdump on the bridge br0, which sees every frame of the LAN, and
// returns once tcpdump is listening. filter is a pcap-filter expression ("arp or
// icmp6"); none captures everything. Frames are written to Path as they arrive (-U),
// so the file can be read while the capture runs; stop it with Stop to flush the last
// frames. Equivalent to `ip netns exec SW tcpdump -i br0 -n -U --immediate-mode -Z root -w PATH FILTER`.
func (l *Lab) Capture(filter ...string) (*Capture, error) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return nil, fmt.Errorf("capture on %s: tcpdump not found in PATH (apt-get install tcpdump)", l.sw.Link)
	}
	dir, err := l.logDir()
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "capture-*.pcap")
	if err != nil {
		return nil, fmt.Errorf("create capture file: %w", err)
	}
	path := f.Name()
	f.Close()
	// -Z root: tcpdump would otherwise drop to its own user, which cannot write to
	// the lab's private log directory.
	args := append([]string{"-i", l.sw.Link, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", path}, filter...)
	p, err := l.sw.Start("tcpdump", args...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(captureStart)
	for {
		log, _ := os.ReadFile(p.LogPath())
		if bytes.Contains(log, []byte("listening on")) {
			return &Capture{Proc: p, Path: path}, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("tcpdump on %s in %s exited: %v: %s", l.sw.Link, l.sw.Name, p.Wait(), strings.TrimSpace(string(log)))
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("tcpdump on %s in %s not listening after %v: %s", l.sw.Link, l.sw.Name, captureStart, strings.TrimSpace(string(log)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
