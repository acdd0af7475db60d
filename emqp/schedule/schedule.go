// Package schedule is the pure logic of eMQP's built-in scheduler, which
// stands in for EventMQ's emq-scheduler: parsing SCHEDULE and UNSCHEDULE,
// keying a schedule exactly as EventMQ does (so that UNSCHEDULE finds it),
// computing run times for interval and cron schedules, and counting runs
// (run_count, nohaste). Store persists schedules; OpenBolt keeps them in
// an embedded bbolt file so that they survive a restart (EventMQ needs
// Redis for that).
//
// Cron expressions are parsed by github.com/robfig/cron/v3, the parser
// Kubernetes' CronJob controller uses: the standard five fields, the
// @hourly-style descriptors, and a CRON_TZ= prefix. Times are local, as
// EventMQ's croniter schedules are.
package schedule

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/majordomo-go/majordomo/emqp/wire"
)

// Forever is the run count of a schedule without run_count.
const Forever = -1

// ErrSpec wraps every error Parse returns.
var ErrSpec = errors.New("schedule: bad SCHEDULE")

// MaxJobLen bounds the job frame a schedule keeps.
const MaxJobLen = 1 << 20

// Spec is one schedule as a client sent it.
type Spec struct {
	Queue    string
	Headers  string
	Interval time.Duration // > 0 for an interval schedule.
	Cron     string        // When Interval is not positive.
	Job      []byte        // JSON ["run", {...}], as sent.
	RunCount int           // Forever, or how many runs in all.
	Nohaste  bool          // First run after the first interval, not at once.
	// Guarantee makes the runs guaranteed requests (an improvement on
	// EventMQ's scheduler, which drops the schedule's headers).
	Guarantee bool
}

// Parse reads the arguments of SCHEDULE or UNSCHEDULE: queue, headers,
// interval seconds (-1: use cron), job, cron; older clients omit the cron
// frame. For UNSCHEDULE only the job matters (see Key).
func Parse(args [][]byte) (Spec, error) {
	if len(args) < 4 || len(args) > 5 {
		return Spec{}, fmt.Errorf("%w: %d arguments, want queue, headers, interval, job[, cron]", ErrSpec, len(args))
	}
	h := wire.ParseHeaders(args[1])
	s := Spec{
		Queue:     string(args[0]),
		Headers:   string(args[1]),
		Job:       append([]byte(nil), args[3]...),
		RunCount:  Forever,
		Nohaste:   h.Nohaste,
		Guarantee: h.Guarantee,
	}
	if s.Queue == "" {
		s.Queue = wire.DefaultQueue
	}
	if h.RunCount >= 0 {
		s.RunCount = h.RunCount
	}
	if len(s.Job) > MaxJobLen {
		return Spec{}, fmt.Errorf("%w: job of %d bytes", ErrSpec, len(s.Job))
	}
	if len(args) == 5 {
		s.Cron = strings.TrimSpace(string(args[4]))
	}
	iv, err := strconv.ParseInt(strings.TrimSpace(string(args[2])), 10, 64)
	if err != nil {
		return Spec{}, fmt.Errorf("%w: interval %q is not an integer", ErrSpec, args[2])
	}
	switch {
	case iv > 0:
		if iv > 10*365*24*3600 {
			return Spec{}, fmt.Errorf("%w: interval of %d seconds", ErrSpec, iv)
		}
		s.Interval = time.Duration(iv) * time.Second
		s.Cron = ""
	case iv == 0:
		// EventMQ's client refuses it; its scheduler would run the job on
		// every turn of its loop.
		return Spec{}, fmt.Errorf("%w: interval 0", ErrSpec)
	case s.Cron == "":
		return Spec{}, fmt.Errorf("%w: interval %d without a cron expression", ErrSpec, iv)
	default:
		if _, err := ParseCron(s.Cron); err != nil {
			return Spec{}, fmt.Errorf("%w: %v", ErrSpec, err)
		}
	}
	return s, nil
}

// ParseCron parses a cron expression.
func ParseCron(expr string) (cron.Schedule, error) {
	return cron.ParseStandard(expr)
}

// Key returns EventMQ's schedule hash of a job: the SHA-1, in hex, of
// Python's json.dumps(..., sort_keys=True) of the job's args, kwargs,
// class_args, class_kwargs, path and callable (eventmq.scheduler's
// schedule_hash). Missing fields count as null.
func Key(job []byte) (string, error) {
	if len(job) > MaxJobLen {
		// UNSCHEDULE reaches here without Parse's check.
		return "", fmt.Errorf("%w: job of %d bytes", ErrSpec, len(job))
	}
	var msg []any
	if err := unmarshal(job, &msg); err != nil {
		return "", fmt.Errorf("%w: job is not a JSON list [command, {...}]: %v", ErrSpec, err)
	}
	if len(msg) < 2 {
		return "", fmt.Errorf("%w: job is not a JSON list [command, {...}]", ErrSpec)
	}
	params, ok := msg[1].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%w: job parameters are not a JSON object", ErrSpec)
	}
	keyed := map[string]any{}
	for _, k := range []string{"args", "kwargs", "class_args", "class_kwargs", "path", "callable"} {
		keyed[k] = params[k]
	}
	sum := sha1.Sum(PyJSON(nil, keyed))
	return hex.EncodeToString(sum[:]), nil
}

// MaxIntDigits is the longest integer literal a job may hold: Python's
// default int_max_str_digits (3.11 and later), past which EventMQ's own
// json.loads refuses the job. It also bounds the work of one key: decimal
// conversion of an arbitrary-precision integer grows faster than linearly
// (a 1 MiB literal took 6 s here), and keys are computed on the server's
// event loop.
const MaxIntDigits = 4300

// unmarshal decodes JSON with numbers kept as literals, refusing integer
// literals of more than MaxIntDigits digits.
func unmarshal(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return checkInts(v)
}

// checkInts walks a decoded value for integer literals over MaxIntDigits.
func checkInts(v any) error {
	switch x := v.(type) {
	case *[]any:
		return checkInts(*x)
	case *any:
		return checkInts(*x)
	case []any:
		for _, e := range x {
			if err := checkInts(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range x {
			if err := checkInts(e); err != nil {
				return err
			}
		}
	case json.Number:
		lit := strings.TrimPrefix(string(x), "-")
		if len(lit) > MaxIntDigits && !strings.ContainsAny(lit, ".eE") {
			return fmt.Errorf("integer of %d digits (at most %d)", len(lit), MaxIntDigits)
		}
	}
	return nil
}

// Timing says when a schedule runs next.
type Timing struct {
	Interval time.Duration
	Cron     cron.Schedule // When Interval is not positive.
	// Anchor is the start of an interval schedule's grid: runs are due
	// at Anchor + k × Interval, as EventMQ's IntervalIter counts them.
	Anchor time.Time
}

// NewTiming returns the timing of s, anchored at now.
func NewTiming(s *Spec, now time.Time) (Timing, error) {
	if s.Interval > 0 {
		return Timing{Interval: s.Interval, Anchor: now}, nil
	}
	c, err := ParseCron(s.Cron)
	if err != nil {
		return Timing{}, err
	}
	return Timing{Cron: c, Anchor: now}, nil
}

// After returns the first run time strictly after t.
func (tm Timing) After(t time.Time) time.Time {
	if tm.Interval > 0 {
		if t.Before(tm.Anchor) {
			return tm.Anchor
		}
		k := t.Sub(tm.Anchor)/tm.Interval + 1
		return tm.Anchor.Add(k * tm.Interval)
	}
	return tm.Cron.Next(t)
}
