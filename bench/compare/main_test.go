package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
		{[]float64{7}, 7, 7, 7},
	} {
		s := summarize(tc.in)
		if s.med != tc.med || s.min != tc.min || s.max != tc.max || s.n != len(tc.in) {
			t.Errorf("summarize(%v) = %+v", tc.in, s)
		}
	}
	if s := summarize(nil); s.n != 0 || s.String() != "–" {
		t.Errorf("summarize(nil) = %+v %q", s, s)
	}
}

// mdbenchLine is one run of an mdbench cell with the given figures.
func mdbenchLine(cell, mode, variant, affinity string, rps, broker string) string {
	return `{"cell":"` + cell + `","mode":"` + mode + `","variant":"` + variant + `","rep":1,"kind":"mdbench","result":` +
		`{"host":{"affinity":"` + affinity + `"},"phases":[{"name":"broker","rps":` + rps + `,"errors":0,"cpu":[` +
		`{"name":"mdbench","kind":"process","us_per_req":0.1},{"name":"broker","kind":"process","us_per_req":` + broker + `},` +
		`{"name":"workers","kind":"process","us_per_req":10},{"name":"clients","kind":"process","us_per_req":5}]}]}}`
}

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		mdbenchLine("a-2w", "pinned", "base", "0", "1000", "100"),
		mdbenchLine("a-2w", "pinned", "base", "0", "1200", "120"),
		mdbenchLine("a-2w", "pinned", "base", "0", "1100", "110"),
		mdbenchLine("a-2w", "pinned", "cur", "0", "3000", "40"),
		mdbenchLine("a-2w", "pinned", "cur", "0-1", "3300", "60"), // pinned, yet allowed two CPUs: warned.
		mdbenchLine("b-sync", "unpinned", "base", "0,1", "1000", "50"),
		mdbenchLine("b-sync", "unpinned", "cur", "0,1", "1400", "30"),
		`{"cell":"e-titanic","mode":"pinned","variant":"base","rep":1,"kind":"titanic","result":{"n":100,"subs/s":5000,"cpu-us/op":80}}`,
		`{"cell":"e-titanic","mode":"pinned","variant":"cur","rep":1,"kind":"titanic","result":{"n":100,"subs/s":11000,"cpu-us/op":40}}`,
		`{"cell":"g-sync","mode":"unpinned","variant":"relay","rep":1,"kind":"relay","result":{"rps":7000,"relay_us_per_req":15,"workers_us_per_req":9,"client_us_per_req":9,"affinity":"0,1"}}`,
		`{"cell":"a-8w","mode":"pinned","variant":"cur","rep":1,"kind":"bogus","result":{}}`,
	}, "\n")
	var out, warn bytes.Buffer
	if err := report(strings.NewReader(in), &out, &warn); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	for _, want := range []string{
		// Median of 100, 110, 120 against the median of 40 and 60: 50/110.
		"| a. broker, 2 workers, window 100 (same Go peers) | broker µs/req | 110.0 (100.0–120.0, n=3) | 50.00 (40.00–60.00, n=2) | 0.45× | ≤ 0.5× met |",
		"| req/s | 1100 (1000–1200, n=3) | 3150 (3000–3300, n=2) | 2.86× |  |",
		// The synchronous target holds for unpinned runs: 1.4× is short of 1.5×.
		"| req/s | 1000 (1000–1000, n=1) | 1400 (1400–1400, n=1) | 1.40× | ≥ 1.5× NOT met |",
		"| subs/s | 5000 (5000–5000, n=1) | 11000 (11000–11000, n=1) | 2.20× | ≥ 2.0× met |",
		// The relay next to the current broker of cell b-sync: 30/15.
		"| synchronous, 1 worker | broker µs/req | 15.00 (15.00–15.00, n=1) | 30.00 (30.00–30.00, n=1) | 2.00× |",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("report lacks %q:\n%s", want, o)
		}
	}
	w := warn.String()
	if !strings.Contains(w, "allowed CPUs 0-1") || !strings.Contains(w, `unknown kind "bogus"`) {
		t.Errorf("warnings %q", w)
	}
}
