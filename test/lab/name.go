package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Prefix starts the name of every namespace a lab creates. The full name is
// Prefix + lab id + "-" + role, for example cdlab-4242-9f3a-n1:
//
//	cdlab-<pid>-<rand>-<role>   a lab owned by process <pid>; stale once <pid> is gone
//	cdlab-m-<rand>-<role>       a manual lab (Options.Manual, `scripts/lab up`); only
//	                            Remove or `scripts/lab down` deletes it
//
// Roles are sw (the switch), n1…nN (nodes), client and wins.
const Prefix = "cdlab-"

// manualOwner is the owner field of a manual lab's id.
const manualOwner = "m"

// Roles of the namespaces in a lab; nodes are "n1", "n2", ...
const (
	roleSwitch = "sw"
	roleClient = "client"
	roleWINS   = "wins"
)

// Info describes one lab found on this host by List.
type Info struct {
	ID         string   // lab id, e.g. "4242-9f3a" or "m-9f3a"
	Owner      int      // pid of the owning process; 0 for a manual lab, -1 if the name is malformed
	Namespaces []string // namespace names, sorted
}

// Manual reports whether the lab was made to outlive its creator (Options.Manual).
func (i Info) Manual() bool { return i.Owner == 0 }

// Stale reports whether the lab's owner has exited. Manual labs and labs with
// malformed names are never stale: only an explicit Remove deletes them.
func (i Info) Stale() bool { return i.Owner > 0 && !alive(i.Owner) }

// newID returns a fresh lab id for the owner ("m" or a pid): owner-XXXX with four
// random hex digits.
func newID(owner string) (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random lab id: %w", err)
	}
	return owner + "-" + hex.EncodeToString(b[:]), nil
}

// nsName is the namespace name of role in lab id.
func nsName(id, role string) string { return Prefix + id + "-" + role }

// parseName splits a namespace name into lab id, owner pid (0 manual, -1 malformed)
// and role. ok is false for names without Prefix.
func parseName(name string) (id string, owner int, role string, ok bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return "", 0, "", false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return rest, -1, "", true
	}
	id, role = rest[:i], rest[i+1:]
	first, _, found := strings.Cut(id, "-")
	switch pid, err := strconv.Atoi(first); {
	case !found:
		owner = -1
	case first == manualOwner:
		owner = 0
	case err == nil && pid > 0:
		owner = pid
	default:
		owner = -1
	}
	return id, owner, role, true
}

// List returns the labs whose namespaces exist on this host, sorted by id.
func List() ([]Info, error) {
	entries, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	byID := map[string]*Info{}
	var ids []string
	for _, e := range entries {
		id, owner, _, ok := parseName(e.Name())
		if !ok {
			continue
		}
		in := byID[id]
		if in == nil {
			in = &Info{ID: id, Owner: owner}
			byID[id] = in
			ids = append(ids, id)
		}
		in.Namespaces = append(in.Namespaces, e.Name())
	}
	slices.Sort(ids)
	infos := make([]Info, 0, len(ids))
	for _, id := range ids {
		in := byID[id]
		slices.Sort(in.Namespaces)
		infos = append(infos, *in)
	}
	return infos, nil
}

// Remove deletes every namespace of the lab with this id, killing (SIGKILL) the
// processes inside them first. It is how other processes' labs are removed; a lab's
// owner uses Close instead. A lab that does not exist is not an error.
func Remove(id string) error {
	infos, err := List()
	if err != nil {
		return err
	}
	for _, in := range infos {
		if in.ID == id {
			return remove(in)
		}
	}
	return nil
}

func remove(in Info) error {
	var errs []error
	for _, name := range in.Namespaces {
		errs = append(errs, sweep(name))
	}
	// Deleting the switch frees the bridge and the switch ends of every veth pair, and
	// with them the eth0 ends in the hosts.
	for _, name := range in.Namespaces {
		errs = append(errs, deleteNS(name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove lab %s: %w", in.ID, err)
	}
	return nil
}

// CleanStale removes the labs whose owning process has exited (a test binary that was
// killed, or crashed before its cleanup ran), with any processes still inside them.
// Labs of live processes — parallel `go test` packages — and manual labs are left
// alone. New and Create call it.
func CleanStale() error {
	infos, err := List()
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range infos {
		if in.Stale() {
			errs = append(errs, remove(in))
		}
	}
	return errors.Join(errs...)
}
