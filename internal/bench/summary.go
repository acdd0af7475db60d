package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// Record is one line of a bench/run.sh results file: one run of one cell of
// the matrix, either an mdbench Result or the JSON of bench/c/echo_client.
type Record struct {
	Mode   string          `json:"mode"` // "pinned" or "unpinned".
	Rep    int             `json:"rep"`
	Cell   string          `json:"cell"`
	Kind   string          `json:"kind"` // "mdbench" or "c".
	Result json.RawMessage `json:"result"`
}

// cEcho is the JSON printed by bench/c/echo_client -j.
type cEcho struct {
	Requests uint64             `json:"requests"`
	RPS      float64            `json:"rps"`
	Latency  Percentiles        `json:"latency_us"`
	CPU      map[string]float64 `json:"cpu_us_per_req"`
}

// sample is the figures of one run of one cell.
type sample struct {
	rps, p50, p99, p999 float64
	cpu                 map[string]float64 // us/req by process.
	sw                  map[string]float64 // context switches/req by process.
	rawRPS, rawP50      float64            // Same run, raw phase (0: none).
	rawP99              float64
	errors              uint64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Summary is the medians of every cell of every mode.
type Summary struct {
	Cells []CellSummary `json:"cells"`
}

// CellSummary is one cell's medians over its runs.
type CellSummary struct {
	Mode       string             `json:"mode"`
	Cell       string             `json:"cell"`
	Runs       int                `json:"runs"`
	RPS        float64            `json:"rps"`
	RPSMin     float64            `json:"rps_min"`
	RPSMax     float64            `json:"rps_max"`
	P50        float64            `json:"p50_us"`
	P99        float64            `json:"p99_us"`
	P999       float64            `json:"p99_9_us"`
	CPU        map[string]float64 `json:"cpu_us_per_req"`
	Switches   map[string]float64 `json:"switches_per_req,omitempty"`
	RawRPS     float64            `json:"raw_rps,omitempty"`
	OverRaw    float64            `json:"broker_over_raw_rps,omitempty"`
	P50OverRaw float64            `json:"p50_over_raw,omitempty"`
	P99OverRaw float64            `json:"p99_over_raw,omitempty"`
	// Against the C echo of the same size and window, same repetition.
	OverC    float64 `json:"over_c_rps,omitempty"`
	P50OverC float64 `json:"p50_over_c,omitempty"`
	P99OverC float64 `json:"p99_over_c,omitempty"`
	Errors   uint64  `json:"errors"`
}

// cPeer names the C echo cell matching an mdbench cell: "b-sync-2w-100"
// and "c-sync-100" share the window ("sync") and the size ("100").
func cPeer(cell string) string {
	f := strings.Split(cell, "-")
	if len(f) < 3 {
		return ""
	}
	return "c-" + f[1] + "-" + f[len(f)-1]
}

// Summarize reads run.sh records and computes the medians.
func Summarize(r io.Reader) (*Summary, error) {
	type key struct{ mode, cell string }
	type repKey struct {
		mode, cell string
		rep        int
	}
	samples := map[key][]sample{}
	byRep := map[repKey]sample{}
	var order []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("bad record: %w", err)
		}
		var s sample
		switch rec.Kind {
		case "c":
			var c cEcho
			if err := json.Unmarshal(rec.Result, &c); err != nil {
				return nil, fmt.Errorf("%s: %w", rec.Cell, err)
			}
			s = sample{rps: c.RPS, p50: c.Latency.P50, p99: c.Latency.P99, p999: c.Latency.P999, cpu: c.CPU}
		default:
			var res Result
			if err := json.Unmarshal(rec.Result, &res); err != nil {
				return nil, fmt.Errorf("%s: %w", rec.Cell, err)
			}
			main := res.Phase("broker")
			raw := res.Phase("raw")
			if main == nil {
				main = raw
			}
			if main == nil {
				continue
			}
			s = sample{rps: main.RPS, p50: main.Latency.P50, p99: main.Latency.P99, p999: main.Latency.P999,
				cpu: map[string]float64{}, sw: map[string]float64{}, errors: main.Errors}
			for _, c := range main.CPU {
				s.cpu[c.Name] = c.USPerReq
				if c.Kind == "process" {
					s.sw[c.Name] = c.SwitchesPerReq
				}
			}
			if raw != nil && raw != main {
				s.rawRPS, s.rawP50, s.rawP99 = raw.RPS, raw.Latency.P50, raw.Latency.P99
				for _, c := range raw.CPU {
					s.cpu["raw:"+c.Name] = c.USPerReq
				}
			}
		}
		k := key{rec.Mode, rec.Cell}
		if _, ok := samples[k]; !ok {
			order = append(order, k)
		}
		samples[k] = append(samples[k], s)
		byRep[repKey{rec.Mode, rec.Cell, rec.Rep}] = s
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sum := &Summary{}
	for _, k := range order {
		ss := samples[k]
		col := func(f func(sample) float64) []float64 {
			var v []float64
			for _, s := range ss {
				if x := f(s); x > 0 {
					v = append(v, x)
				}
			}
			return v
		}
		rps := col(func(s sample) float64 { return s.rps })
		c := CellSummary{Mode: k.mode, Cell: k.cell, Runs: len(ss), RPS: median(rps),
			P50: median(col(func(s sample) float64 { return s.p50 })), P99: median(col(func(s sample) float64 { return s.p99 })),
			P999: median(col(func(s sample) float64 { return s.p999 })), CPU: map[string]float64{}, Switches: map[string]float64{}}
		if len(rps) > 0 {
			c.RPSMin, c.RPSMax = slices.Min(rps), slices.Max(rps)
		}
		names := map[string]bool{}
		swNames := map[string]bool{}
		for _, s := range ss {
			c.Errors += s.errors
			for n := range s.cpu {
				names[n] = true
			}
			for n := range s.sw {
				swNames[n] = true
			}
		}
		for n := range names {
			c.CPU[n] = median(col(func(s sample) float64 { return s.cpu[n] }))
		}
		for n := range swNames {
			c.Switches[n] = median(col(func(s sample) float64 { return s.sw[n] }))
		}
		c.RawRPS = median(col(func(s sample) float64 { return s.rawRPS }))
		c.OverRaw = median(col(func(s sample) float64 { return ratio(s.rps, s.rawRPS) }))
		c.P50OverRaw = median(col(func(s sample) float64 { return ratio(s.p50, s.rawP50) }))
		c.P99OverRaw = median(col(func(s sample) float64 { return ratio(s.p99, s.rawP99) }))
		// Same repetition's C echo.
		if peer := cPeer(k.cell); peer != "" && !strings.HasPrefix(k.cell, "c-") {
			var or, o50, o99 []float64
			for rk, s := range byRep {
				if rk.mode != k.mode || rk.cell != k.cell {
					continue
				}
				cs, ok := byRep[repKey{k.mode, peer, rk.rep}]
				if !ok {
					continue
				}
				or = append(or, ratio(s.rps, cs.rps))
				o50 = append(o50, ratio(s.p50, cs.p50))
				o99 = append(o99, ratio(s.p99, cs.p99))
			}
			c.OverC, c.P50OverC, c.P99OverC = median(or), median(o50), median(o99)
		}
		sum.Cells = append(sum.Cells, c)
	}
	return sum, nil
}

func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// WriteMarkdown prints the summary as one Markdown table per mode.
func (s *Summary) WriteMarkdown(w io.Writer) {
	modes := []string{}
	for _, c := range s.Cells {
		if !slices.Contains(modes, c.Mode) {
			modes = append(modes, c.Mode)
		}
	}
	f := func(v float64, format string) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	for _, m := range modes {
		fmt.Fprintf(w, "\n### %s (medians)\n\n", m)
		fmt.Fprintln(w, "| cell | runs | req/s | (min–max) | p50 µs | p99 µs | p99.9 µs | broker µs/req | workers µs/req | clients µs/req | broker cs/req | raw req/s | broker/raw | p50 ×raw | vs C echo req/s | p50 ×C | p99 ×C |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
		for _, c := range s.Cells {
			if c.Mode != m {
				continue
			}
			broker := c.CPU["broker"]
			if broker == 0 {
				broker = c.CPU["server"] // C echo server.
			}
			if broker == 0 && c.CPU["broker-threads"] > 0 {
				broker = c.CPU["broker-threads"]
			}
			clients := c.CPU["clients"]
			if clients == 0 {
				clients = c.CPU["client"]
			}
			if clients == 0 && !strings.HasPrefix(c.Cell, "c-") {
				clients = c.CPU["mdbench"] // Everything in one process.
			}
			errs := ""
			if c.Errors > 0 {
				errs = fmt.Sprintf(" (%d errors)", c.Errors)
			}
			fmt.Fprintf(w, "| %s%s | %d | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				c.Cell, errs, c.Runs, f(c.RPS, "%.0f"), f(c.RPSMin, "%.0f"), f(c.RPSMax, "%.0f"),
				f(c.P50, "%.0f"), f(c.P99, "%.0f"), f(c.P999, "%.0f"),
				f(broker, "%.1f"), f(c.CPU["workers"], "%.1f"), f(clients, "%.1f"), f(c.Switches["broker"], "%.2f"),
				f(c.RawRPS, "%.0f"), f(c.OverRaw, "%.3f"), f(c.P50OverRaw, "%.1f"),
				f(c.OverC, "%.3f"), f(c.P50OverC, "%.1f"), f(c.P99OverC, "%.1f"))
		}
	}
}

// SummarizeMain is "mdbench summarize FILE...": medians of run.sh records
// as Markdown on stdout, and as JSON with --json.
func SummarizeMain(args []string, stdout, stderr io.Writer) int {
	asJSON := false
	var files []string
	for _, a := range args {
		if a == "--json" || a == "-json" {
			asJSON = true
			continue
		}
		files = append(files, a)
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: mdbench summarize [--json] RESULTS.jsonl...")
		return 2
	}
	var readers []io.Reader
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(stderr, "mdbench: %v\n", err)
			return 1
		}
		defer fh.Close()
		readers = append(readers, fh)
	}
	s, err := Summarize(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintf(stderr, "mdbench: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(s)
		return 0
	}
	s.WriteMarkdown(stdout)
	return 0
}
