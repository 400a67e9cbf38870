package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"
)

// Result is one run, appended to the results file as one JSON line.
type Result struct {
	Time    time.Time `json:"time"`
	Impl    string    `json:"impl"`
	Profile string    `json:"profile"`
	Fault   string    `json:"fault"`
	Run     int       `json:"run"`
	From    string    `json:"from,omitempty"` // holder before the fault
	To      string    `json:"to,omitempty"`   // first other node to answer ARP after it
	// Holder says whether the holder was the raft leader at the fault ("leader",
	// "follower"; clusterd only; results before the --holder flag have "").
	Holder string `json:"holder,omitempty"`

	// Failover says another node answered ARP within the limit; OutageMS is then the
	// client-observed outage counting only the new holder's replies: from the last
	// reply before the fault to the new holder's first (for a graceful move, from the
	// last reply by anyone before the new holder's first).
	Failover bool    `json:"failover"`
	OutageMS float64 `json:"outage_ms"`
	// SilenceMS is the longest time without a reply from anyone between the fault
	// and the new holder's first reply: the outage a client would see that takes any
	// answer (an old holder's still-answering kernel hides the failover time).
	SilenceMS float64 `json:"silence_ms"`

	// TwoHolderMS is the time two live nodes held the address in their kernels at
	// once; DoubleRounds the ARP probe rounds answered by two MACs.
	TwoHolderMS  float64  `json:"two_holder_ms"`
	DoubleRounds int      `json:"double_rounds"`
	LeftBehind   []string `json:"left_behind"` // nodes holding the address at the end that should not
	Converged    bool     `json:"converged"`   // one holder again after healing, within the limit

	Phases *Phases `json:"phases,omitempty"` // clusterd's own timeline of the failover (phases.go)

	Error string `json:"error,omitempty"` // the run could not be carried out
	Logs  string `json:"logs,omitempty"`  // the run's directory, kept (--keep, or after an error)
}

// twoHolders says the run ever had two holders, in a kernel or on the wire.
func (r Result) twoHolders() bool { return r.TwoHolderMS > 0 || r.DoubleRounds > 0 }

// appendResult appends r to the file as one JSON line.
func appendResult(path string, r Result) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open results file: %w", err)
	}
	line, err := json.Marshal(r)
	if err != nil {
		f.Close()
		return err
	}
	_, err = f.Write(append(line, '\n'))
	return cmp.Or(err, f.Close())
}

// readResults reads a results file written by appendResult.
func readResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Row is the summary of the runs of one implementation, profile and fault.
type Row struct {
	Impl, Profile, Fault string
	Holder               string  // "leader", "follower", "" (keepalived, older results)
	Runs                 int     // runs carried out (without Error)
	Errors               int     // runs that could not be carried out
	NoFailover           int     // runs where no other node answered within the limit
	Median, P99, Max     float64 // outage in ms, over runs with a failover
	TwoHolders           int     // runs with two holders (kernel or ARP)
	MaxTwoHolderMS       float64
	MaxDoubleRounds      int
	LeftBehind           int // runs that left the address behind
	// Phases are the medians of the runs' failover phases (clusterd; nil if none).
	Phases *Phases
}

// summarise groups results by implementation, profile, fault and holder, in
// first-seen order.
func summarise(results []Result) []Row {
	var rows []Row
	index := map[[4]string]int{}
	outages := map[[4]string][]float64{}
	phases := map[[4]string][]Phases{}
	for _, r := range results {
		k := [4]string{r.Impl, r.Profile, r.Fault, r.Holder}
		i, ok := index[k]
		if !ok {
			i = len(rows)
			index[k] = i
			rows = append(rows, Row{Impl: r.Impl, Profile: r.Profile, Fault: r.Fault, Holder: r.Holder})
		}
		row := &rows[i]
		if r.Error != "" {
			row.Errors++
			continue
		}
		row.Runs++
		if !r.Failover {
			row.NoFailover++
		} else {
			outages[k] = append(outages[k], r.OutageMS)
		}
		if r.Phases != nil {
			phases[k] = append(phases[k], *r.Phases)
		}
		if r.twoHolders() {
			row.TwoHolders++
		}
		row.MaxTwoHolderMS = max(row.MaxTwoHolderMS, r.TwoHolderMS)
		row.MaxDoubleRounds = max(row.MaxDoubleRounds, r.DoubleRounds)
		if len(r.LeftBehind) > 0 {
			row.LeftBehind++
		}
	}
	for k, i := range index {
		row := &rows[i]
		row.Median, row.P99, row.Max = percentile(outages[k], 50), percentile(outages[k], 99), percentile(outages[k], 100)
		if ps := phases[k]; len(ps) > 0 {
			med := func(f func(Phases) float64) float64 {
				xs := make([]float64, len(ps))
				for i, p := range ps {
					xs[i] = f(p)
				}
				return percentile(xs, 50)
			}
			row.Phases = &Phases{
				DetectMS: med(func(p Phases) float64 { return p.DetectMS }),
				CommitMS: med(func(p Phases) float64 { return p.CommitMS }),
				ApplyMS:  med(func(p Phases) float64 { return p.ApplyMS }),
				UpMS:     med(func(p Phases) float64 { return p.UpMS }),
			}
		}
	}
	return rows
}

// percentile returns the nearest-rank p-th percentile of xs (NaN for none): the
// smallest value with at least p % of the values at or below it. With fewer than 100
// runs p99 is thus the maximum.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// printTable writes the rows as an aligned table.
func printTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\tprofile\tfault\tholder\truns\tmedian ms\tp99 ms\tmax ms\tno failover\ttwo holders\tmax 2-holder ms\tmax 2-MAC rounds\tleft behind\terrors\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%d\t\n", r.Impl, r.Profile, r.Fault, cmp.Or(r.Holder, "-"), r.Runs,
			msString(r.Median), msString(r.P99), msString(r.Max), r.NoFailover, r.TwoHolders, r.MaxTwoHolderMS, r.MaxDoubleRounds, r.LeftBehind, r.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printPhases(w, rows)
}

// printPhases writes the median failover phases of the rows that have them.
func printPhases(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := false
	for _, r := range rows {
		if r.Phases == nil {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nclusterd failover phases (medians, ms; event 1201):")
			fmt.Fprintln(tw, "impl\tprofile\tfault\tholder\tdetect\tcommit\tapply on new holder\tseen to address up\t")
			header = true
		}
		p := r.Phases
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t\n", r.Impl, r.Profile, r.Fault, cmp.Or(r.Holder, "-"), p.DetectMS, p.CommitMS, p.ApplyMS, p.UpMS)
	}
	return tw.Flush()
}

func msString(ms float64) string {
	if math.IsNaN(ms) {
		return "-"
	}
	return fmt.Sprintf("%.0f", ms)
}
