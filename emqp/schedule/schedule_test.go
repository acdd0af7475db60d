package schedule

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func args(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

const job = `["run", {"callable": "send_email", "path": "app.tasks", "args": [1, "x"], "kwargs": {"b": 2.5, "a": null}, "class_args": [], "class_kwargs": {}}]`

func TestParse(t *testing.T) {
	s, err := Parse(args("email", "guarantee,run_count:3,nohaste", "60", job, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s.Queue != "email" || s.Interval != time.Minute || s.RunCount != 3 || !s.Nohaste || !s.Guarantee || s.Cron != "" {
		t.Fatalf("%+v", s)
	}
	s, err = Parse(args("", "", "-1", job, "*/5 * * * *"))
	if err != nil || s.Cron != "*/5 * * * *" || s.Interval != 0 || s.RunCount != Forever || s.Queue != "default" {
		t.Fatalf("%+v %v", s, err)
	}
	if s, err = Parse(args("q", "", "30", job)); err != nil || s.Interval != 30*time.Second {
		t.Fatalf("older four-argument SCHEDULE: %+v %v", s, err)
	}
	for _, bad := range [][][]byte{
		args("q", "", job),                     // The spec's three arguments: no interval.
		args("q", "", "0", job, ""),            // Interval 0.
		args("q", "", "x", job, ""),            // Not a number.
		args("q", "", "-1", job, ""),           // Cron without expression.
		args("q", "", "-1", job, "61 * * * *"), // Bad cron.
		args("q", "", "999999999999", job, ""),
		args("q", "", "1", job, "", "extra"),
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrSpec) {
			t.Errorf("Parse(%q) = %v, want ErrSpec", bad, err)
		}
	}
}

// pythonDumps runs Python's own json.dumps(sort_keys=True) and sha1, the
// reference for PyJSON and Key.
func pythonDumps(t *testing.T, inputs []string) (dumps, hashes []string) {
	t.Helper()
	const py = `
import hashlib, json, sys
for line in sys.stdin.read().split("\n\x00\n"):
    if not line:
        continue
    v = json.loads(line)
    print(json.dumps(json.dumps(v, sort_keys=True)))
    try:
        m = v[1]
        items = json.dumps({"args": m.get("args"), "kwargs": m.get("kwargs"),
                            "class_args": m.get("class_args"), "class_kwargs": m.get("class_kwargs"),
                            "path": m.get("path"), "callable": m.get("callable")}, sort_keys=True)
        print(hashlib.sha1(items.encode("utf-8")).hexdigest())
    except Exception:
        print("-")
`
	cmd := exec.Command("/usr/bin/python3", "-c", py)
	cmd.Stdin = strings.NewReader(strings.Join(inputs, "\n\x00\n"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2*len(inputs) {
		t.Fatalf("python3 printed %d lines for %d inputs", len(lines), len(inputs))
	}
	for i := 0; i < len(lines); i += 2 {
		var d string
		if err := json.Unmarshal([]byte(lines[i]), &d); err != nil {
			t.Fatal(err)
		}
		dumps, hashes = append(dumps, d), append(hashes, lines[i+1])
	}
	return dumps, hashes
}

// Key and PyJSON must match Python byte for byte: a schedule made by one
// router must be found by UNSCHEDULE whichever router keyed it.
func TestKeyMatchesPython(t *testing.T) {
	inputs := []string{
		job,
		`["run", {"callable": "f", "path": "m", "args": [], "kwargs": {}, "class_args": [], "class_kwargs": {}}]`,
		`["run", {"callable": "f", "path": "m", "args": [1.0, 1e5, 1E-5, 0.1, 123456789012345678901234567890, -0, 1e16, 1.5e15, 0.0001, 3.14159, -2.5e-7, 1e400], "kwargs": {"z": true, "y": false, "x": null}}]`,
		`["run", {"callable": "f\u00e9\ud83d\ude00", "path": "caf\u00e9 \"q\" \\ / <>&\t\n\u0001\u007f", "kwargs": {"\u00e9": 1, "e": 2, "E": 3}}]`,
		`["run", {"path": "m", "callable": "g", "args": [[1, [2, {"b": [], "a": {}}]]]}]`,
		`["run", {}]`,
		// The longest integer Python (3.11+) converts by default.
		`["run", {"args": [-` + strings.Repeat("9", MaxIntDigits) + `]}]`,
	}
	dumps, hashes := pythonDumps(t, inputs)
	for i, in := range inputs {
		var v any
		if err := unmarshal([]byte(in), &v); err != nil {
			t.Fatal(err)
		}
		if got := string(PyJSON(nil, v)); got != dumps[i] {
			t.Errorf("PyJSON(%s)\n got %s\nwant %s", in, got, dumps[i])
		}
		got, err := Key([]byte(in))
		if err != nil || got != hashes[i] {
			t.Errorf("Key(%s) = %s, %v; Python %s", in, got, err, hashes[i])
		}
	}
	// One digit more: Python's json.loads refuses it, and converting a
	// long one would hold the event loop for seconds.
	tooLong := `["run", {"kwargs": {"n": [` + strings.Repeat("9", MaxIntDigits+1) + `]}}]`
	tooBig := `["run", {"path": "` + strings.Repeat("x", MaxJobLen) + `"}]`
	for _, bad := range []string{`{}`, `["run"]`, `["run", 5]`, `not json`, `["run", {}] trailing`, tooLong, tooBig} {
		if _, err := Key([]byte(bad)); !errors.Is(err, ErrSpec) {
			t.Errorf("Key(%s) = %v", bad, err)
		}
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.Local)

func TestTimingGrid(t *testing.T) {
	spec, _ := Parse(args("q", "", "60", job, ""))
	tm, _ := NewTiming(&spec, t0)
	for _, tc := range []struct{ at, want time.Duration }{
		{-time.Hour, 0}, {0, time.Minute}, {59 * time.Second, time.Minute},
		{time.Minute, 2 * time.Minute}, {10*time.Minute + time.Second, 11 * time.Minute},
	} {
		if got := tm.After(t0.Add(tc.at)); !got.Equal(t0.Add(tc.want)) {
			t.Errorf("After(+%v) = +%v, want +%v", tc.at, got.Sub(t0), tc.want)
		}
	}
	spec, _ = Parse(args("q", "", "-1", job, "30 * * * *"))
	tm, _ = NewTiming(&spec, t0)
	if got := tm.After(t0); !got.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("cron After = %v", got)
	}
}

func collect(s *Scheduler, now time.Time) []Run {
	var out []Run
	s.Due(now, func(r Run) { out = append(out, r) })
	return out
}

// run_count:N gives N runs in all, the first at once unless nohaste.
func TestRunCountAndNohaste(t *testing.T) {
	for _, tc := range []struct {
		headers string
		want    int
		first   bool
	}{
		{"run_count:3", 3, true},
		{"run_count:3,nohaste", 3, false},
		{"run_count:1", 1, true},
		{"run_count:0", 0, false},
		{"", 10, true}, // Forever: 10 runs seen in the window below.
		{"nohaste", 9, false},
	} {
		s, _ := New(nil, t0)
		spec, err := Parse(args("q", tc.headers, "10", job, ""))
		if err != nil {
			t.Fatal(err)
		}
		_, first, err := s.Schedule(spec, t0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		if first != nil {
			n++
		}
		if (first != nil) != tc.first {
			t.Errorf("%q: first run %v", tc.headers, first)
		}
		for now := t0.Add(time.Second); now.Before(t0.Add(95 * time.Second)); now = now.Add(time.Second) {
			n += len(collect(s, now))
		}
		if n != tc.want {
			t.Errorf("%q: %d runs, want %d", tc.headers, n, tc.want)
		}
		if tc.headers != "" && tc.headers != "nohaste" && s.Len() != 0 {
			t.Errorf("%q: schedule kept after its last run", tc.headers)
		}
	}
}

func TestScheduleReplaceUnscheduleAndLateLoop(t *testing.T) {
	s, _ := New(nil, t0)
	spec, _ := Parse(args("q", "nohaste", "10", job, ""))
	key, _, _ := s.Schedule(spec, t0)
	spec2, _ := Parse(args("other", "nohaste,guarantee", "20", job, ""))
	key2, _, _ := s.Schedule(spec2, t0) // Same job: the same key, replaced.
	if key != key2 || s.Len() != 1 {
		t.Fatalf("keys %s %s, %d schedules", key, key2, s.Len())
	}
	if next, ok := s.NextDue(); !ok || !next.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("NextDue %v", next)
	}
	// A loop an hour late runs it once, then resumes on its grid.
	runs := collect(s, t0.Add(time.Hour+5*time.Second))
	if len(runs) != 1 || runs[0].Queue != "other" || !runs[0].Guarantee || string(runs[0].Job) != job {
		t.Fatalf("late runs %+v", runs)
	}
	if next, _ := s.NextDue(); !next.Equal(t0.Add(time.Hour + 20*time.Second)) {
		t.Fatalf("next after late run %v", next.Sub(t0))
	}
	if ok, err := s.Unschedule([]byte(job)); !ok || err != nil || s.Len() != 0 {
		t.Fatalf("Unschedule %v %v", ok, err)
	}
	if ok, _ := s.Unschedule([]byte(job)); ok {
		t.Fatal("Unschedule twice")
	}
	if _, ok := s.NextDue(); ok {
		t.Fatal("NextDue with nothing scheduled")
	}
	if s.Runs() != 1 {
		t.Fatalf("Runs %d", s.Runs())
	}
}

// Schedules survive a restart in the bbolt store, with their grid and
// their remaining runs; missed runs are skipped.
func TestBoltSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "schedules.db")
	st, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(st, t0)
	if err != nil {
		t.Fatal(err)
	}
	every, _ := Parse(args("q", "", "60", job, ""))
	s.Schedule(every, t0)
	job2 := strings.Replace(job, "send_email", "report", 1)
	counted, _ := Parse(args("r", "run_count:3", "-1", job2, "0 * * * *"))
	s.Schedule(counted, t0) // One run at once: 2 left.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(path); err == nil {
		t.Fatal("a second process opened the store")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	later := t0.Add(3*time.Hour + 30*time.Second)
	st, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err = New(st, later)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list := s.List()
	if len(list) != 2 {
		t.Fatalf("restored %+v", list)
	}
	for _, in := range list {
		switch in.Queue {
		case "q":
			if !in.Next.Equal(t0.Add(3*time.Hour + time.Minute)) {
				t.Errorf("interval grid lost: next %v", in.Next.Sub(t0))
			}
		case "r":
			if in.Remaining != 2 || !in.Next.Equal(t0.Add(4*time.Hour)) {
				t.Errorf("cron schedule %+v", in)
			}
		}
	}
	// A record that does not decode is reported, the others load.
	st.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte("junk"), []byte("{")) })
	recs, err := st.Load()
	if err == nil || len(recs) != 2 {
		t.Fatalf("Load with a bad record: %d, %v", len(recs), err)
	}
}

type failingStore struct{ Memory }

func (f *failingStore) Apply([]Record, []string) error { return errors.New("disk full") }

func TestFlushErrorKeepsChanges(t *testing.T) {
	s, _ := New(&failingStore{}, t0)
	spec, _ := Parse(args("q", "", "60", job, ""))
	s.Schedule(spec, t0)
	if err := s.Flush(); err == nil {
		t.Fatal("Flush hid the error")
	}
	if len(s.put) != 1 {
		t.Fatal("changes lost after a failed Flush")
	}
}
