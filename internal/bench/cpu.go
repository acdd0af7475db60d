package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTick = 100

// procCPU returns the CPU time (user + system, all threads, exited ones
// included) a process has used, from /proc/PID/stat. Resolution 10 ms.
func procCPU(pid int) (time.Duration, error) {
	return statCPU(fmt.Sprintf("/proc/%d/stat", pid))
}

func statCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(s[i+1:])
	// After ')': state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// threadCPU returns the CPU time of one thread of this process from its
// schedstat (nanoseconds on CPU).
func threadCPU(tid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, fmt.Errorf("schedstat: unexpected format")
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns), err
}

// threads returns the ids of this process's threads with their names.
func threads() map[int]string {
	out := map[int]string{}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return out
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", tid))
		out[tid] = strings.TrimSpace(string(comm))
	}
	return out
}

// procSwitches returns the context switches (voluntary and involuntary)
// of a process's live threads, summed from /proc/PID/task/*/status. Threads
// that exited are missed; the threads of libzmq and the Go runtime live as
// long as the process.
func procSwitches(pid int) (uint64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/status")
		if err != nil {
			continue // Exited meanwhile.
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "voluntary_ctxt_switches:") || strings.HasPrefix(line, "nonvoluntary_ctxt_switches:") {
				f := strings.Fields(line)
				if v, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
					sum += v
				}
			}
		}
	}
	return sum, nil
}

// cpuMeter measures the CPU time a set of processes or threads uses between
// start and stop.
type cpuMeter struct {
	name  string
	pid   int
	read  func() (time.Duration, error)
	begin time.Duration
	used  time.Duration
	err   error
	// Context switches over the interval, for processes (pid > 0).
	sw0, switches uint64
}

func (m *cpuMeter) start() {
	if m.pid > 0 {
		m.sw0, _ = procSwitches(m.pid)
	}
	m.begin, m.err = m.read()
}

func (m *cpuMeter) stop() {
	if m.err != nil {
		return
	}
	end, err := m.read()
	if err != nil {
		m.err = err
		return
	}
	m.used = end - m.begin
	if m.pid > 0 {
		if sw, err := procSwitches(m.pid); err == nil && sw >= m.sw0 {
			m.switches = sw - m.sw0
		}
	}
}
