package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Figure is one measured number, appended to the results file as one JSON line as
// soon as it is known (an interrupted run keeps what it measured).
type Figure struct {
	Time  time.Time `json:"time"`
	Run   string    `json:"run"`  // this invocation, to group a results file
	Case  string    `json:"case"` // single, single-netbios, cluster, placement
	Name  string    `json:"name"`
	Value float64   `json:"value"`
	Unit  string    `json:"unit"`
	// Max is the target as an upper bound (0: none).
	Max float64 `json:"max,omitempty"`
	// Command is what started the timed work (the clock starts just before it).
	Command string `json:"command"`
	Note    string `json:"note,omitempty"`
	// Error says why the figure could not be measured (Value is then meaningless).
	Error string `json:"error,omitempty"`
	// Binary identifies the clusterd measured: its sha256 prefix and build time, and
	// the checkout's HEAD when the run started (other people commit meanwhile).
	Binary string `json:"binary,omitempty"`
}

// verdict says whether the figure meets its target.
func (f Figure) verdict() string {
	switch {
	case f.Error != "":
		return "FAILED"
	case f.Max == 0:
		return ""
	case f.Value <= f.Max:
		return "ok"
	}
	return "MISSED"
}

// value formats the figure with its unit.
func (f Figure) value() string {
	if f.Error != "" {
		return "-"
	}
	return strconv.FormatFloat(f.Value, 'f', decimals(f.Value), 64) + " " + f.Unit
}

func (f Figure) target() string {
	if f.Max == 0 {
		return ""
	}
	return "≤ " + strconv.FormatFloat(f.Max, 'f', -1, 64) + " " + f.Unit
}

func decimals(v float64) int {
	switch {
	case v == float64(int64(v)) || v >= 100:
		return 0
	case v >= 10:
		return 1
	}
	return 2
}

// report collects figures, prints each as it comes and appends it to the results
// file.
type report struct {
	run     string
	binary  string
	results string // "" = none
	log     io.Writer

	mu   sync.Mutex // guards figs
	figs []Figure
}

func (r *report) add(f Figure) {
	f.Time, f.Run, f.Binary = time.Now().UTC(), r.run, r.binary
	r.mu.Lock()
	r.figs = append(r.figs, f)
	r.mu.Unlock()
	line := fmt.Sprintf("  %-15s %-52s %s", f.Case, f.Name, f.value())
	if v := f.verdict(); v != "" {
		line += "  [" + v + " " + f.target() + "]"
	}
	if f.Error != "" {
		line += "  error: " + f.Error
	}
	fmt.Fprintln(r.log, line)
	if r.results == "" {
		return
	}
	if err := appendFigure(r.results, f); err != nil {
		fmt.Fprintf(r.log, "  (not recorded: %v)\n", err)
	}
}

func (r *report) figures() []Figure {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Figure(nil), r.figs...)
}

// anyFailed reports whether a figure could not be measured.
func (r *report) anyFailed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.figs {
		if f.Error != "" {
			return true
		}
	}
	return false
}

func appendFigure(path string, f Figure) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open results file: %w", err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		fh.Close()
		return err
	}
	if _, err := fh.Write(append(b, '\n')); err != nil {
		fh.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return fh.Close()
}

// readFigures reads a results file; run selects one invocation ("" = the last one
// in the file).
func readFigures(path, run string) ([]Figure, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open results file: %w", err)
	}
	defer fh.Close()
	var all []Figure
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var f Figure
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		all = append(all, f)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if run == "" && len(all) > 0 {
		run = all[len(all)-1].Run
	}
	var out []Figure
	for _, f := range all {
		if f.Run == run {
			out = append(out, f)
		}
	}
	return out, nil
}

// printTable prints the figures in the order measured.
func printTable(w io.Writer, figs []Figure) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tfigure\tvalue\ttarget\t\tcommand (clock starts before it)")
	for _, f := range figs {
		cmd := f.Command
		if f.Note != "" {
			cmd += " — " + f.Note
		}
		if f.Error != "" {
			cmd += " — error: " + f.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Case, f.Name, f.value(), f.target(), f.verdict(), oneLine(cmd))
	}
	return tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
