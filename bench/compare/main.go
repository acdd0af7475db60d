// Command compare prints the Markdown tables of a bench/compare.sh run from
// its results.jsonl: per cell and mode, the median (and min–max) of every
// figure for the baseline and the current build, their ratio, and the
// issue's target for that ratio where it has one.
//
//	go run ./bench/compare bench/results/compare-STAMP/results.jsonl
//
// Each line of the input is one run:
//
//	{"cell":"a-2w","mode":"pinned","variant":"base","rep":1,"kind":"mdbench","result":{...}}
//
// kind is mdbench (result: mdbench --json), titanic (result: the metrics of
// one Benchmark line, by unit) or relay (result: bench/relay -json).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

type record struct {
	Cell    string          `json:"cell"`
	Mode    string          `json:"mode"`
	Variant string          `json:"variant"`
	Rep     int             `json:"rep"`
	Kind    string          `json:"kind"`
	Result  json.RawMessage `json:"result"`

	metrics  map[string]float64
	affinity string // the CPUs the run was allowed, as it reported them.
}

// mdbenchResult is the part of mdbench's JSON this reads.
type mdbenchResult struct {
	Host struct {
		Affinity string `json:"affinity"`
	} `json:"host"`
	Phases []struct {
		Name   string  `json:"name"`
		RPS    float64 `json:"rps"`
		Errors uint64  `json:"errors"`
		CPU    []struct {
			Name     string  `json:"name"`
			Kind     string  `json:"kind"`
			USPerReq float64 `json:"us_per_req"`
			Error    string  `json:"error"`
		} `json:"cpu"`
	} `json:"phases"`
}

// Metric names, shared by every kind of run.
const (
	mRPS     = "req/s"
	mBroker  = "broker µs/req"
	mWorkers = "workers µs/req"
	mClients = "clients µs/req"
	mTotal   = "all processes µs/req"
	mSubs    = "subs/s"
	mCPUOp   = "Titanic process µs/sub"
)

// decode fills r.metrics from r.Result.
func (r *record) decode() error {
	r.metrics = map[string]float64{}
	switch r.Kind {
	case "mdbench":
		var m mdbenchResult
		if err := json.Unmarshal(r.Result, &m); err != nil {
			return err
		}
		r.affinity = m.Host.Affinity
		for _, p := range m.Phases {
			if p.Name != "broker" {
				continue
			}
			if p.Errors > 0 {
				return fmt.Errorf("%d errors", p.Errors)
			}
			r.metrics[mRPS] = p.RPS
			total, all := 0.0, true
			for _, c := range p.CPU {
				if c.Error != "" || c.Kind != "process" {
					all = false
					continue
				}
				total += c.USPerReq
				switch c.Name {
				case "broker":
					r.metrics[mBroker] = c.USPerReq
				case "workers":
					r.metrics[mWorkers] = c.USPerReq
				case "clients":
					r.metrics[mClients] = c.USPerReq
				}
			}
			if all {
				r.metrics[mTotal] = total
			}
		}
	case "titanic":
		var m map[string]float64
		if err := json.Unmarshal(r.Result, &m); err != nil {
			return err
		}
		r.metrics[mSubs] = m["subs/s"]
		r.metrics[mCPUOp] = m["cpu-us/op"]
	case "relay":
		var m struct {
			RPS     float64 `json:"rps"`
			Relay   float64 `json:"relay_us_per_req"`
			Workers float64 `json:"workers_us_per_req"`
			Client  float64 `json:"client_us_per_req"`
			Aff     string  `json:"affinity"`
		}
		if err := json.Unmarshal(r.Result, &m); err != nil {
			return err
		}
		r.affinity = m.Aff
		r.metrics[mRPS] = m.RPS
		r.metrics[mBroker] = m.Relay // The relay stands where the broker does.
		r.metrics[mWorkers] = m.Workers
		r.metrics[mClients] = m.Client
		r.metrics[mTotal] = m.Relay + m.Workers + m.Client
	default:
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	return nil
}

// target is the bound on current ÷ baseline for one figure.
type target struct {
	atMost bool // ≤ bound (CPU), else ≥ bound (throughput).
	bound  float64
	modes  []string // the modes the target is stated for (nil: all).
}

func (t *target) String() string {
	if t.atMost {
		return fmt.Sprintf("≤ %.1f×", t.bound)
	}
	return fmt.Sprintf("≥ %.1f×", t.bound)
}

func (t *target) applies(mode string) bool {
	return t != nil && (t.modes == nil || slices.Contains(t.modes, mode))
}

type line struct {
	metric string
	target *target
}

// cell is one comparison of compare.sh.
type cell struct {
	name, title string
	lines       []line
}

var (
	halfCPU = &target{atMost: true, bound: 0.5}
	cells   = []cell{
		{"a-2w", "a. broker, 2 workers, window 100 (same Go peers)", []line{{mBroker, halfCPU}, {mRPS, nil}}},
		{"a-8w", "a. broker, 8 workers, window 100 (same Go peers)", []line{{mBroker, halfCPU}, {mRPS, nil}}},
		{"b-sync", "b. broker, synchronous, 1 worker (same Go peers)", []line{{mRPS, &target{bound: 1.5, modes: []string{"unpinned"}}}, {mBroker, nil}}},
		{"c-w100", "c. Go peers, 2 workers, window 100 (current broker)", []line{{mWorkers, halfCPU}, {mClients, halfCPU}, {mRPS, nil}}},
		{"c-sync", "c. Go peers, synchronous, 1 worker (current broker)", []line{{mWorkers, halfCPU}, {mClients, halfCPU}, {mRPS, nil}}},
		{"d-sync", "d. all-Go stack, synchronous, 1 worker, 1 client", []line{{mRPS, &target{bound: 3}}, {mTotal, nil}, {mBroker, nil}, {mWorkers, nil}, {mClients, nil}}},
		{"e-titanic", "e. Titanic durable submissions (BenchmarkTitanicSubmit)", []line{{mSubs, &target{bound: 2}}, {mCPUOp, nil}}},
		{"h-titanic", "h. Titanic inside mdbroker (--titanic-dir), durable submissions, 8 clients x window 256 (same Go clients); broker includes Titanic", []line{{mRPS, &target{bound: 2}}, {mBroker, nil}, {mClients, nil}}},
	}
)

// stats is the median and range of one figure's runs.
type stats struct {
	n             int
	med, min, max float64
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stats{n: n, med: med, min: s[0], max: s[n-1]}
}

func num(x float64) string {
	switch a := math.Abs(x); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", x)
	case a >= 100:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func (s stats) String() string {
	if s.n == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s, n=%d)", num(s.med), num(s.min), num(s.max), s.n)
}

type key struct{ cell, mode, variant, metric string }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compare RESULTS.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	if err := report(f, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

func report(in io.Reader, out, warn io.Writer) error {
	vals := map[key][]float64{}
	var modes []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for ln := 1; sc.Scan(); ln++ {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("line %d: %w", ln, err)
		}
		if err := r.decode(); err != nil {
			fmt.Fprintf(warn, "compare: line %d (%s %s %s): %v, left out\n", ln, r.Cell, r.Mode, r.Variant, err)
			continue
		}
		if r.Mode == "pinned" && strings.ContainsAny(r.affinity, ",-") {
			fmt.Fprintf(warn, "compare: line %d (%s %s): a pinned run that was allowed CPUs %s\n", ln, r.Cell, r.Variant, r.affinity)
		}
		if !slices.Contains(modes, r.Mode) {
			modes = append(modes, r.Mode)
		}
		for m, v := range r.metrics {
			k := key{r.Cell, r.Mode, r.Variant, m}
			vals[k] = append(vals[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	get := func(cell, mode, variant, metric string) stats {
		return summarize(vals[key{cell, mode, variant, metric}])
	}
	for _, mode := range modes {
		fmt.Fprintf(out, "\n### %s\n", mode)
		header := false
		for _, c := range cells {
			for _, l := range c.lines {
				a, b := get(c.name, mode, "base", l.metric), get(c.name, mode, "cur", l.metric)
				if a.n == 0 && b.n == 0 {
					continue
				}
				if !header {
					header = true
					fmt.Fprintln(out, "\nMedian (min–max, runs) of each figure; ratio = median of current ÷ median of baseline.")
					fmt.Fprintln(out)
					fmt.Fprintln(out, "| cell | figure | baseline | current | ratio | target |")
					fmt.Fprintln(out, "|---|---|---|---|---|---|")
				}
				ratio, verdict := "–", ""
				if a.n > 0 && b.n > 0 && a.med > 0 {
					x := b.med / a.med
					ratio = fmt.Sprintf("%.2f×", x)
					if l.target.applies(mode) {
						ok := x >= l.target.bound
						if l.target.atMost {
							ok = x <= l.target.bound
						}
						verdict = l.target.String() + map[bool]string{true: " met", false: " NOT met"}[ok]
					}
				}
				fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", c.title, l.metric, a, b, ratio, verdict)
			}
		}
		curve(out, mode, get)
		relay(out, mode, get)
	}
	return nil
}

// curve prints cell f: CURVE against NULL, current build.
func curve(out io.Writer, mode string, get func(cell, mode, variant, metric string) stats) {
	if get("f-curve", mode, "null", mRPS).n == 0 && get("f-curve", mode, "curve", mRPS).n == 0 {
		return
	}
	fmt.Fprintf(out, "\nf. CURVE next to NULL (current build, 2 workers, window 100), %s:\n\n", mode)
	fmt.Fprintln(out, "| figure | NULL | CURVE | CURVE − NULL | CURVE ÷ NULL |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	for _, m := range []string{mBroker, mWorkers, mClients, mRPS} {
		n, c := get("f-curve", mode, "null", m), get("f-curve", mode, "curve", m)
		diff, ratio := "–", "–"
		if n.n > 0 && c.n > 0 && n.med > 0 {
			diff = num(c.med - n.med)
			if c.med >= n.med {
				diff = "+" + diff
			}
			ratio = fmt.Sprintf("%.2f×", c.med/n.med)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", m, n, c, diff, ratio)
	}
}

// relay prints cell g: the plain Go relay next to the current broker's
// figures of the same shape measured in the same run.
func relay(out io.Writer, mode string, get func(cell, mode, variant, metric string) stats) {
	pairs := []struct{ relayCell, brokerCell, title string }{
		{"g-w100", "a-2w", "2 workers, window 100"},
		{"g-sync", "b-sync", "synchronous, 1 worker"},
	}
	any := false
	for _, p := range pairs {
		any = any || get(p.relayCell, mode, "relay", mRPS).n > 0
	}
	if !any {
		return
	}
	fmt.Fprintf(out, "\ng. Plain Go TCP relay (bench/relay) next to the current broker (cells a-2w, b-sync: current mdbench and mdbroker), %s. The relay row's \"broker\" is the relay process:\n\n", mode)
	fmt.Fprintln(out, "| shape | figure | relay | current broker | broker ÷ relay |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	for _, p := range pairs {
		for _, m := range []string{mBroker, mRPS, mWorkers, mClients} {
			r, b := get(p.relayCell, mode, "relay", m), get(p.brokerCell, mode, "cur", m)
			if r.n == 0 {
				continue
			}
			ratio := "–"
			if b.n > 0 && r.med > 0 {
				ratio = fmt.Sprintf("%.2f×", b.med/r.med)
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", p.title, m, r, b, ratio)
		}
	}
}
