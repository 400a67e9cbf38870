package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// WINSName and WINSWorkgroup are the NetBIOS name and workgroup of the lab's WINS
// server; the name is registered (<00>, <03>, <20>) on 198.18.0.1.
const (
	WINSName      = "CDLABWINS"
	WINSWorkgroup = "CDLAB"
)

// winsStart bounds how long StartWINS waits for nmbd to answer a name query.
const winsStart = 10 * time.Second

// WINSServer is Samba's nmbd running as the lab's WINS server.
type WINSServer struct {
	*Proc         // nmbd; logs at level 2 to LogPath
	Config string // its smb.conf
	Dir    string // its private directories; wins.dat (written by nmbd from time to time and at exit) is in Dir/state
}

// StartWINS starts Samba's nmbd in the WINS namespace as a WINS server (`wins support
// = yes`) bound to eth0 only, with its configuration and state in a fresh directory
// of the lab, and returns once it answers a name query for WINSName. extra lines are
// appended to [global] ("wins proxy = no"). It needs Options.WINS and the Debian
// package samba (nmbd) with smbclient's nmblookup.
func (l *Lab) StartWINS(extra ...string) (*WINSServer, error) {
	w := l.wins
	if w == nil {
		return nil, fmt.Errorf("start WINS server: lab %s has no WINS namespace (set Options.WINS)", l.id)
	}
	for _, tool := range []string{"nmbd", "nmblookup"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start WINS server: %s not found in PATH (apt-get install samba smbclient)", tool)
		}
	}
	logDir, err := l.logDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(logDir, "nmbd-")
	if err != nil {
		return nil, fmt.Errorf("start WINS server: %w", err)
	}
	conf := filepath.Join(dir, "smb.conf")
	if err := os.WriteFile(conf, []byte(nmbdConfig(dir, w.Link, extra)), 0o644); err != nil {
		return nil, fmt.Errorf("start WINS server: %w", err)
	}
	p, err := w.Start("nmbd", "--foreground", "--no-process-group", "--debug-stdout", "--configfile="+conf)
	if err != nil {
		return nil, err
	}
	if err := waitNmbd(w, p, conf); err != nil {
		p.Kill()
		return nil, err
	}
	return &WINSServer{Proc: p, Config: conf, Dir: dir}, nil
}

// nmbdConfig returns an smb.conf for a WINS-only nmbd whose every path lies in dir, so
// several labs (and a host nmbd) never share state.
func nmbdConfig(dir, link string, extra []string) string {
	lines := []string{
		"[global]",
		"netbios name = " + WINSName,
		"workgroup = " + WINSWorkgroup,
		"wins support = yes",
		"interfaces = " + link,
		"bind interfaces only = yes",
		"dns proxy = no",
		"local master = no",
		"domain master = no",
		"preferred master = no",
		"load printers = no",
		"log level = 2",
	}
	for _, d := range []string{"lock", "state", "cache", "pid", "private", "ncalrpc"} {
		name := d + " directory"
		switch d {
		case "private":
			name = "private dir"
		case "ncalrpc":
			name = "ncalrpc dir"
		}
		lines = append(lines, name+" = "+filepath.Join(dir, d))
	}
	lines = append(lines, extra...)
	return strings.Join(lines, "\n\t") + "\n"
}

// waitNmbd polls with nmblookup from the WINS namespace until nmbd answers a WINS
// query for its own name.
func waitNmbd(w *Host, p *Proc, conf string) error {
	ctx, cancel := context.WithTimeout(context.Background(), winsStart)
	defer cancel()
	want := w.Addr.Addr().String() + " " + WINSName + "<00>"
	for {
		out, _ := w.Run(ctx, "nmblookup", "--configfile="+conf, "-U", w.Addr.Addr().String(), "--recursion", WINSName)
		if strings.Contains(string(out), want) {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("nmbd in %s exited at start: %v (log %s)", w.Name, p.Wait(), p.LogPath())
		case <-ctx.Done():
			return fmt.Errorf("nmbd in %s answers no WINS query for %s after %v (log %s)", w.Name, WINSName, winsStart, p.LogPath())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
