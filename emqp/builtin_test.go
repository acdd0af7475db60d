package emqp

import (
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

const schedJob = `["run", {"callable": "cleanup", "path": "app.tasks", "args": [], "kwargs": {}, "class_args": [], "class_kwargs": {}}]`

// The built-in scheduler takes SCHEDULE and makes the REQUESTs itself, as
// emq-scheduler would: at once (no nohaste), then every interval, run_count
// times in all, each with reply-requested and a fresh msgid.
func TestBuiltinSchedulerRuns(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Scheduler = true })
	jm := ts.jobManager("jm-1", `[[10, "default"], [10, "maintenance"]]`)
	for i := 0; i < 5; i++ {
		jm.send("READY")
	}
	c := ts.client("c")
	start := time.Now()
	c.send("SCHEDULE", "maintenance", "guarantee,run_count:3", "1", schedJob, "")
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	var at []time.Duration
	for i := 0; i < 3; i++ {
		f := jm.expect("REQUEST")
		at = append(at, time.Since(start))
		if !uuid.Match(f[3]) || string(f[4]) != "maintenance" || string(f[5]) != "reply-requested,guarantee" || string(f[6]) != schedJob {
			t.Fatalf("run %d: %q", i, f)
		}
		jm.send("REPLY", `{"value": null}`, string(f[3]))
		jm.send("READY")
	}
	if at[0] > 500*time.Millisecond || at[1] < 700*time.Millisecond || at[2] < 1700*time.Millisecond {
		t.Fatalf("runs at %v, want about 0s, 1s, 2s", at)
	}
	st := ts.waitFor("replies", func(s Stats) bool { return s.Replies == 3 })
	// run_count:3 is spent: the schedule is gone, so no run can follow.
	if st.ScheduledRuns != 3 || st.Schedules != 0 || st.Scheduled != 1 || st.RepliesForwarded != 0 {
		t.Fatalf("stats %+v", st)
	}
	jm.quiet()
	c.quiet() // The client of a SCHEDULE gets nothing back, as with EventMQ.
}

// Schedules survive a restart in the store; UNSCHEDULE removes them, and
// also reaches external schedulers.
func TestBuiltinSchedulerPersistence(t *testing.T) {
	store := filepath.Join(t.TempDir(), "schedules.db")
	withStore := func(c *Config) { c.Scheduler, c.SchedulerStore = true, store }
	ts := startServer(t, withStore)
	c := ts.client("c")
	c.send("SCHEDULE", "default", "nohaste", "3600", schedJob, "")
	c.send("SCHEDULE", "default", "", "-1", `["run", {"callable": "nightly", "path": "app"}]`, "0 3 * * *")
	c.send("SCHEDULE", "default", "", "-1", schedJob+"x", "") // Not JSON, no cron.
	ts.waitFor("two schedules", func(s Stats) bool { return s.Schedules == 2 && s.Dropped[DropBadSchedule] == 1 })
	ts.s.Close()

	ts2 := startServer(t, withStore)
	ts2.waitFor("restored schedules", func(s Stats) bool { return s.Schedules == 2 })
	a := ts2.admin("admin:cli")
	b := a.adminJSON("ROUTER_SHOW_SCHEDULERS")["builtin_scheduler"].(map[string]any)
	if list := b["schedules"].([]any); len(list) != 2 {
		t.Fatalf("builtin schedules %v", b)
	}
	if full := ts2.s.Status(); len(full.Schedules) != 2 {
		t.Fatalf("Status.Schedules %+v", full.Schedules)
	}
	ext := ts2.scheduler("external")
	c2 := ts2.client("c2")
	// Reformatted JSON is the same job to EventMQ's key.
	c2.send("UNSCHEDULE", "default", "", "-1", `["run",{"class_kwargs":{},"class_args":[],"kwargs":{},"args":[],"path":"app.tasks","callable":"cleanup"}]`, "")
	ext.expect("UNSCHEDULE")
	ts2.waitFor("unscheduled", func(s Stats) bool { return s.Schedules == 1 && s.Unscheduled == 2 })
	ts2.s.Close()

	ts3 := startServer(t, withStore)
	ts3.waitFor("restored schedule", func(s Stats) bool { return s.Schedules == 1 })
	if _, err := New(Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", SchedulerStore: store}); err == nil {
		t.Fatal("SchedulerStore without Scheduler accepted")
	}
}
