package emqp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/emqp/wire"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// A job manager's INFORM gets ACK [its msgid] and then, at once, a
// HEARTBEAT: EventMQ's job manager starts its worker processes only on
// the first router HEARTBEAT, so it must not wait a whole interval.
func TestInformAckThenPromptHeartbeat(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.HeartbeatInterval, c.HeartbeatTimeout = 0, 0 }) // EventMQ's 3 s / 5 s.
	jm := ts.dial(ts.ep.Backend, "jm-1")
	id := jm.send("INFORM", `[[10, "default"]]`, "worker")
	start := time.Now()
	ack := jm.expect("ACK")
	if len(ack) != 5 || string(ack[4]) != id || len(ack[3]) != 36 {
		t.Fatalf("ACK %q", ack)
	}
	hb := jm.expect("HEARTBEAT")
	if el := time.Since(start); el > time.Second {
		t.Fatalf("first HEARTBEAT after %v", el)
	}
	ts2, err := strconv.ParseFloat(string(hb[4]), 64)
	if err != nil || abs(ts2-float64(time.Now().Unix())) > 5 {
		t.Fatalf("HEARTBEAT timestamp %q", hb[4])
	}
	st := ts.s.Stats()
	if st.Workers != 1 || st.Registered != 1 || st.Heartbeats < 1 {
		t.Fatalf("stats %+v", st)
	}
}

// gone counts job managers removed because they died: a closed socket is
// unreachable as soon as libzmq notices, silent otherwise.
func gone(s Stats) uint64 { return s.Removed[RemovedExpired] + s.Removed[RemovedUnreachable] }

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// The core path: READY gives a slot, REQUEST goes to the job manager with
// the client's frames and msgid, the client gets REPLY [msgid].
func TestRequestForwardedUnchanged(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", `[[10, "default"]]`)
	jm.send("READY")
	ts.waitFor("a free slot", func(s Stats) bool { return s.FreeSlots == 1 })
	c := ts.client("client-1")
	payload := `["run", {"callable": "add", "path": "tasks", "args": [1, 2]}]`
	id := c.request("default", "", payload)
	jm.expectRequest(id, "default", "", payload)
	ack := c.expect("REPLY")
	if len(ack) != 5 || string(ack[4]) != id {
		t.Fatalf("client ack %q", ack)
	}
	st := ts.waitFor("dispatch", func(s Stats) bool { return s.Dispatched == 1 })
	// Fire-and-forget: not tracked once sent.
	if st.Requests != 1 || st.Acks != 1 || st.FreeSlots != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	jm.send("READY")
	ts.waitFor("slot back", func(s Stats) bool { return s.FreeSlots == 1 })
	c.quiet()
}

// Requests wait in their queue until a slot opens; a queue no job manager
// serves sends its requests to "default", with the queue frame unchanged.
func TestBufferedAndDefaultQueue(t *testing.T) {
	ts := startServer(t)
	c := ts.client("client-1")
	id1 := c.request("default", "", "one")
	id2 := c.request("no-such-queue", "", "two")
	ts.waitFor("two waiting", func(s Stats) bool { return s.Waiting == 2 })
	c.quiet()                       // No ack before dispatch.
	jm := ts.jobManager("jm-1", "") // "" means the router's default queues.
	jm.send("READY")
	jm.expectRequest(id1, "default", "", "one")
	jm.send("READY")
	jm.expectRequest(id2, "no-such-queue", "", "two")
	for _, id := range []string{id1, id2} {
		if ack := c.expect("REPLY"); string(ack[4]) != id {
			t.Fatalf("ack %q, want %s", ack, id)
		}
	}
}

// Each READY is one slot: two READYs, three requests, the third waits.
func TestSlotCredit(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", `[[10, "default"]]`)
	jm.send("READY")
	jm.send("READY")
	ts.waitFor("two slots", func(s Stats) bool { return s.FreeSlots == 2 })
	c := ts.client("c")
	ids := []string{c.request("default", "", "1"), c.request("default", "", "2"), c.request("default", "", "3")}
	jm.expectRequest(ids[0], "default", "", "1")
	jm.expectRequest(ids[1], "default", "", "2")
	if st := ts.waitFor("one waiting", func(s Stats) bool { return s.Waiting == 1 }); st.FreeSlots != 0 {
		t.Fatalf("stats %+v", st)
	}
	jm.quiet()
	jm.send("READY")
	jm.expectRequest(ids[2], "default", "", "3")
}

// A job manager serving two queues takes them in proportion to their
// weights; with StrictPriority, the heavier one first.
func TestWeightedQueueSelection(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			ts := startServer(t, func(c *Config) { c.StrictPriority = strict })
			// Register first, so that the queues are known, with no slot.
			jm := ts.jobManager("jm-1", `[[10, "light"], [30, "heavy"]]`)
			c := ts.client("c")
			for i := 0; i < 20; i++ {
				c.request("heavy", "", "h")
				c.request("light", "", "l")
			}
			ts.waitFor("40 waiting", func(s Stats) bool { return s.Waiting == 40 })
			var seq strings.Builder
			for i := 0; i < 16; i++ {
				jm.send("READY")
				f := jm.expect("REQUEST")
				seq.WriteString(string(f[6]))
			}
			got := seq.String()
			want := "hhhlhhhlhhhlhhhl" // 3:1, interleaved.
			if strict {
				want = strings.Repeat("h", 16)
			}
			if strings.Count(got, "h") != strings.Count(want, "h") || (strict && got != want) {
				t.Fatalf("served %s, want the shape of %s", got, want)
			}
			if !strict && strings.Contains(got, "hhhh") {
				t.Fatalf("weighted selection not smooth: %s", got)
			}
		})
	}
}

// A request goes to the job manager that weighs its queue most.
func TestHeaviestJobManagerFirst(t *testing.T) {
	ts := startServer(t)
	light := ts.jobManager("light", `[[5, "q"]]`)
	heavy := ts.jobManager("heavy", `[[50, "q"]]`)
	light.send("READY")
	heavy.send("READY")
	ts.waitFor("two slots", func(s Stats) bool { return s.FreeSlots == 2 })
	c := ts.client("c")
	id := c.request("q", "", "x")
	heavy.expectRequest(id, "q", "", "x")
	id2 := c.request("q", "", "y")
	light.expectRequest(id2, "q", "", "y")
}

// reply-requested: the job manager's REPLY [result, msgid] reaches the
// client after the ACK; without it, nothing but the ACK.
func TestReplyForwarding(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", `[[10, "default"]]`)
	c := ts.client("c")
	jm.send("READY")
	id := c.request("default", "reply-requested", "job")
	jm.expectRequest(id, "default", "reply-requested", "job")
	if ack := c.expect("REPLY"); len(ack) != 5 || string(ack[4]) != id {
		t.Fatalf("ack %q", ack)
	}
	replyID := jm.send("REPLY", `{"value": 3}`, id)
	r := c.expect("REPLY")
	if want := "|eMQP/1.0|REPLY|" + replyID + `|{"value": 3}|` + id; strs(r) != want {
		t.Fatalf("forwarded REPLY %q, want %q", strs(r), want)
	}
	jm.send("READY")
	st := ts.waitFor("reply counted", func(s Stats) bool { return s.Replies == 1 && s.FreeSlots == 1 })
	if st.RepliesForwarded != 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A REPLY for nothing held is dropped and counted.
	jm.send("REPLY", `{"value": 0}`, "no-such-msgid")
	ts.waitFor("unknown reply", func(s Stats) bool { return s.Dropped[DropReplyUnknown] == 1 })
	c.quiet()
}

// A scheduler is a client that asks for replies it cannot use: it gets
// the ACK, not the job manager's REPLY.
func TestSchedulerRequestGetsAckOnly(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", `[[10, "default"]]`)
	sc := ts.scheduler("sched-1")
	jm.send("READY")
	id := sc.request("default", "reply-requested", "tick")
	jm.expectRequest(id, "default", "reply-requested", "tick")
	if ack := sc.expect("REPLY"); string(ack[4]) != id {
		t.Fatalf("ack %q", ack)
	}
	jm.send("REPLY", `{"value": null}`, id)
	ts.waitFor("reply", func(s Stats) bool { return s.Replies == 1 })
	sc.quiet()
}

// guarantee: a request whose job manager dies before its REPLY goes to
// another one, same msgid; the job manager sees reply-requested added so
// that it reports completion, and the client is not sent that REPLY.
func TestGuaranteeRedelivery(t *testing.T) {
	ts := startServer(t)
	jm1 := ts.jobManager("jm-1", `[[10, "default"]]`)
	c := ts.client("c")
	jm1.send("READY")
	id := c.request("default", "guarantee", "important")
	jm1.expectRequest(id, "default", "guarantee,reply-requested", "important")
	c.expect("REPLY") // The ACK.
	jm1.close()       // Dies holding it: unreachable or silent.
	st := ts.waitFor("removal", func(s Stats) bool { return gone(s) == 1 })
	if st.Waiting != 1 {
		t.Fatalf("request not back in its queue: %+v", st)
	}
	jm2 := ts.jobManager("jm-2", `[[10, "default"]]`)
	jm2.send("READY")
	jm2.expectRequest(id, "default", "guarantee,reply-requested", "important")
	jm2.send("REPLY", `{"value": true}`, id)
	st = ts.waitFor("reply", func(s Stats) bool { return s.Replies == 1 })
	if st.Redelivered != 1 || st.RepliesForwarded != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.quiet() // One ACK only, no forwarded REPLY.
}

// retry-count:N allows N redeliveries; then the request is dropped and
// counted.
func TestRetryCountLimitsRedelivery(t *testing.T) {
	ts := startServer(t)
	c := ts.client("c")
	id := c.request("default", "guarantee,retry-count:1,reply-requested", "flaky")
	for i, name := range []string{"jm-1", "jm-2"} {
		jm := ts.jobManager(name, "")
		jm.send("READY")
		jm.expectRequest(id, "default", "guarantee,retry-count:1,reply-requested", "flaky")
		jm.close()
		ts.waitFor("removal", func(s Stats) bool { return gone(s) == uint64(i+1) })
	}
	st := ts.s.Stats()
	if st.Dropped[DropAttemptsExhausted] != 1 || st.Waiting != 0 || st.Redelivered != 1 {
		t.Fatalf("stats %+v", st)
	}
	jm3 := ts.jobManager("jm-3", "")
	jm3.send("READY")
	ts.waitFor("jm-3's slot", func(s Stats) bool { return s.FreeSlots == 1 })
	jm3.quiet()
}

// reply-requested without guarantee: lost with its job manager, counted.
func TestTrackedWithoutGuaranteeIsLost(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	id := c.request("default", "reply-requested", "x")
	jm.expectRequest(id, "default", "reply-requested", "x")
	jm.close()
	st := ts.waitFor("removal", func(s Stats) bool { return gone(s) == 1 })
	if st.Dropped[DropWorkerLost] != 1 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Every job manager and scheduler gets a HEARTBEAT every interval, even
// while it is sent other things; one silent for the timeout is dropped,
// and what it sends afterwards is ignored (no HEARTBEAT either), so that it
// reconnects and INFORMs again, as with EventMQ's router.
func TestHeartbeatsBothWays(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	beats := 0
	deadline := time.Now().Add(6 * testInterval)
	for time.Now().Before(deadline) {
		jm.send("READY")
		c.request("default", "", "busy")
		f := jm.recv(testInterval / 4)
		if f != nil && string(f[2]) == "HEARTBEAT" {
			beats++
		}
	}
	if beats < 4 {
		t.Fatalf("%d heartbeats in %v of traffic", beats, 6*testInterval)
	}
	// Stop talking: dropped after the timeout, not before.
	jm.autoBeat = false
	start := time.Now()
	ts.waitFor("expiry", func(s Stats) bool { return s.Removed[RemovedExpired] == 1 })
	if el := time.Since(start); el < testTimeout-2*testInterval {
		t.Fatalf("dropped after %v, timeout %v", el, testTimeout)
	}
	for jm.recv(10*time.Millisecond) != nil { // Drain what was sent before.
	}
	jm.send("HEARTBEAT", "1")
	jm.send("READY")
	ts.waitFor("unknown peer", func(s Stats) bool { return s.Dropped[DropUnknownPeer] == 2 })
	if f := jm.recv(3 * testInterval); f != nil {
		t.Fatalf("an unregistered job manager was sent %q", f)
	}
	// It comes back with INFORM, as EventMQ's job manager does after
	// missing heartbeats.
	ts.jobManager("jm-1", "")
}

// KBYE: no more requests; replies owed still reach the client; then the
// job manager is removed. An idle one is removed at once.
func TestKbye(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	jm.send("READY")
	id := c.request("default", "reply-requested", "last")
	jm.expectRequest(id, "default", "reply-requested", "last")
	c.expect("REPLY")
	jm.send("KBYE")
	ts.waitFor("leaving", func(s Stats) bool { return s.LeavingWorkers == 1 && s.FreeSlots == 0 })
	id2 := c.request("default", "", "after")
	jm.autoBeat = false // EventMQ's job manager stops heartbeating after KBYE.
	ts.waitFor("request waiting", func(s Stats) bool { return s.Waiting == 1 })
	jm.quiet()
	rid := jm.send("REPLY", `{"value": "done"}`, id)
	if r := c.expect("REPLY"); string(r[3]) != rid || string(r[5]) != id {
		t.Fatalf("owed reply %q", r)
	}
	st := ts.waitFor("removed", func(s Stats) bool { return s.Removed[RemovedKbye] == 1 })
	if st.Workers != 0 || st.Waiting != 1 {
		t.Fatalf("stats %+v", st)
	}
	jm2 := ts.jobManager("jm-2", "")
	jm2.send("READY")
	jm2.expectRequest(id2, "default", "", "after")
	jm2.send("KBYE")
	ts.waitFor("idle kbye", func(s Stats) bool { return s.Removed[RemovedKbye] == 2 && s.Workers == 0 })
}

// A job manager that said KBYE and then owes replies past LeaveGrace is
// removed and its guaranteed requests redelivered.
func TestLeaveGrace(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.LeaveGrace = 2 * testInterval })
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	id := c.request("default", "guarantee", "x")
	jm.expect("REQUEST")
	jm.send("KBYE")
	st := ts.waitFor("leave timeout", func(s Stats) bool { return s.Removed[RemovedLeaveTimeout] == 1 })
	if st.Waiting != 1 {
		t.Fatalf("stats %+v", st)
	}
	jm2 := ts.jobManager("jm-2", "")
	jm2.send("READY")
	jm2.expectRequest(id, "default", "guarantee,reply-requested", "x")
}

// INFORM again from the same identity: it restarted; what it held is
// redelivered (guaranteed) and its slots are reset.
func TestReinform(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	jm.send("READY")
	id := c.request("default", "guarantee", "x")
	jm.expect("REQUEST")
	id2 := jm.send("INFORM", "", "worker")
	if ack := jm.expect("ACK"); string(ack[4]) != id2 {
		t.Fatalf("ACK %q", ack)
	}
	st := ts.waitFor("reinform", func(s Stats) bool { return s.Removed[RemovedReinform] == 1 })
	if st.FreeSlots != 0 || st.Waiting != 1 || st.Workers != 1 {
		t.Fatalf("stats %+v", st)
	}
	jm.send("READY")
	jm.expectRequest(id, "default", "guarantee,reply-requested", "x")
}

// SCHEDULE goes to one scheduler in rotation, unchanged; UNSCHEDULE to
// all; with none connected both are dropped and counted. Schedulers get
// HEARTBEATs on the frontend, and leave with KBYE.
func TestSchedulers(t *testing.T) {
	ts := startServer(t)
	c := ts.client("c")
	c.send("SCHEDULE", "default", "", "60", `["run", {}]`, "")
	ts.waitFor("no scheduler", func(s Stats) bool { return s.Dropped[DropNoScheduler] == 1 })
	s1 := ts.scheduler("sched-1")
	s2 := ts.scheduler("sched-2")
	got := map[string]int{}
	for i := 0; i < 4; i++ {
		job := fmt.Sprintf(`["run", {"callable": "f%d"}]`, i)
		id := c.send("SCHEDULE", "default", "guarantee", "60", job, "")
		var f [][]byte
		if i%2 == 0 {
			f = s1.expect("SCHEDULE")
			got["s1"]++
		} else {
			f = s2.expect("SCHEDULE")
			got["s2"]++
		}
		if want := "|eMQP/1.0|SCHEDULE|" + id + "|default|guarantee|60|" + job + "|"; strs(f) != want {
			t.Fatalf("SCHEDULE %q, want %q", strs(f), want)
		}
	}
	id := c.send("UNSCHEDULE", "default", "", "-1", `["run", {}]`, "")
	for _, s := range []*peer{s1, s2} {
		if f := s.expect("UNSCHEDULE"); string(f[3]) != id {
			t.Fatalf("UNSCHEDULE %q", f)
		}
	}
	// Heartbeats on the frontend.
	s1.expect("HEARTBEAT")
	s2.send("KBYE")
	st := ts.waitFor("kbye", func(s Stats) bool { return s.Schedulers == 1 })
	if st.Scheduled != 4 || st.Unscheduled != 2 || st.SchedulersJoined != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The one left takes everything; a silent one is dropped.
	c.send("SCHEDULE", "default", "", "5", `["run", {}]`, "")
	s1.expect("SCHEDULE")
	s1.autoBeat = false
	ts.waitFor("scheduler expiry", func(s Stats) bool { return s.Schedulers == 0 && s.Removed[RemovedExpired] == 1 })
}

// PUBLISH on the publish socket, or on the frontend, reaches plain SUB
// sockets as [topic, message].
func TestPublish(t *testing.T) {
	ts := startServer(t)
	sub, err := transport.NewSub(ts.pctx, transport.Options{Linger: 0}, []byte("news"))
	if err != nil {
		t.Fatal(err)
	}
	ts.peers = append(ts.peers, sub)
	if err := sub.Connect(ts.ep.PubOut); err != nil {
		t.Fatal(err)
	}
	pub := ts.dial(ts.ep.PubIn, "publisher")
	front := ts.client("c")
	// The subscription reaches the PUB socket asynchronously.
	deadline := time.Now().Add(waitLimit)
	var f [][]byte
	for f == nil && time.Now().Before(deadline) {
		pub.send("PUBLISH", "news.sports", `{"score": 1}`)
		if ok, _ := sub.WaitReadable(20 * time.Millisecond); ok {
			f, _, _ = sub.Recv(0, true)
		}
	}
	if strs(f) != `news.sports|{"score": 1}` {
		t.Fatalf("subscriber got %q", f)
	}
	for { // Drain repeats.
		if ok, _ := sub.WaitReadable(50 * time.Millisecond); !ok {
			break
		}
		sub.Recv(0, true)
	}
	front.send("PUBLISH", "news.world", "headers", "hello")
	pub.send("PUBLISH", "weather", "not subscribed")
	if ok, _ := sub.WaitReadable(waitLimit); !ok {
		t.Fatal("frontend PUBLISH not delivered")
	}
	if f, _, _ = sub.Recv(0, true); strs(f) != "news.world|hello" {
		t.Fatalf("got %q", f)
	}
	pub.send("READY") // Not a publish command.
	ts.waitFor("unexpected", func(s Stats) bool { return s.Dropped[DropUnexpected] == 1 })
}

// emq-cli: HELLO gets nothing; STATUS, ROUTER_SHOW_WORKERS and
// ROUTER_SHOW_SCHEDULERS get REPLY [JSON] with EventMQ's fields.
func TestAdminCommands(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", `[[10, "default"], [20, "email"]]`)
	ts.scheduler("sched-1")
	c := ts.client("c")
	jm.send("READY")
	jm.send("READY")
	id := c.request("email", "reply-requested", "x")
	jm.expectRequest(id, "email", "reply-requested", "x")
	c.request("nowhere", "guarantee", "y") // Goes to default.
	jm.expect("REQUEST")
	c.request("default", "", "z") // Waits.
	ts.waitFor("one waiting", func(s Stats) bool { return s.Waiting == 1 })

	a := ts.admin("admin:cli")
	a.send("HELLO")
	ts.waitFor("HELLO", func(s Stats) bool { return s.AdminCommands == 1 })
	a.quiet()

	st := a.adminJSON("STATUS")
	for _, key := range []string{"inflight_messages_by_queue", "latency_messages_by_queue",
		"max_latency_messages_by_queue", "waiting_messages_by_queue",
		"processed_messages_by_queue", "processed_messages_by_worker"} {
		if _, ok := st[key].(map[string]any); !ok {
			t.Errorf("STATUS lacks %s: %v", key, st)
		}
	}
	inflight := st["inflight_messages_by_queue"].(map[string]any)
	if inflight["email"] != 1.0 || inflight["default"] != 1.0 {
		t.Errorf("inflight %v", inflight)
	}
	if w := st["waiting_messages_by_queue"].(map[string]any); w["default"] != 1.0 {
		t.Errorf("waiting %v", w)
	}
	if p := st["processed_messages_by_worker"].(map[string]any); p["jm-1"] != 2.0 {
		t.Errorf("processed by worker %v", p)
	}
	if p := st["processed_messages_by_queue"].(map[string]any); p["email"] != 1.0 || p["default"] != 1.0 {
		t.Errorf("processed by queue %v", p)
	}

	ws := a.adminJSON("ROUTER_SHOW_WORKERS")
	cw := ws["connected_workers"].(map[string]any)["jm-1"].(map[string]any)
	if fmt.Sprint(cw["queues"]) != "[[20 email] [10 default]]" || cw["available_slots"] != 0.0 {
		t.Errorf("connected_workers %v", cw)
	}
	if _, ok := cw["hb"].(float64); !ok {
		t.Errorf("hb %v", cw["hb"])
	}
	if cq := ws["connected_queues"].(map[string]any); fmt.Sprint(cq["email"]) != "[[20 jm-1]]" {
		t.Errorf("connected_queues %v", cq)
	}
	ss := a.adminJSON("ROUTER_SHOW_SCHEDULERS")
	if _, ok := ss["connected_schedulers"].(map[string]any)["sched-1"]; !ok {
		t.Errorf("schedulers %v", ss)
	}
	// Older emq-cli: STATUS show_managers / show_schedulers.
	if _, ok := a.adminJSON("STATUS", "show_managers")["connected_workers"]; !ok {
		t.Error("STATUS show_managers")
	}
	if _, ok := a.adminJSON("STATUS", "show_schedulers")["connected_schedulers"]; !ok {
		t.Error("STATUS show_schedulers")
	}

	full := ts.s.Status()
	if len(full.Queues) != 2 || len(full.Workers) != 1 || len(full.Schedulers) != 1 || full.InFlight != 2 {
		t.Fatalf("Status %+v", full)
	}
	if q := full.Queues[1]; q.Name != "email" || q.InFlight != 1 || q.Dispatched != 1 || q.QueueWait.Count != 1 {
		t.Fatalf("email status %+v", q)
	}
}

// emq-cli's DISCONNECT: ACK, KBYE to every peer, Run returns
// ErrAdminShutdown.
func TestAdminDisconnect(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	sc := ts.scheduler("sched-1")
	a := ts.admin("admin:cli")
	id := a.send("DISCONNECT")
	if ack := a.expect("ACK"); string(ack[4]) != id {
		t.Fatalf("ACK %q", ack)
	}
	jm.expect("KBYE")
	sc.expect("KBYE")
	select {
	case err := <-ts.err:
		if !errors.Is(err, ErrAdminShutdown) {
			t.Fatalf("Run = %v", err)
		}
		ts.err <- err // For the cleanup.
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
	}
	if st := ts.s.Stats(); st.Removed[RemovedShutdown] != 2 {
		t.Fatalf("final stats %+v", st)
	}
}

func TestAdminDisconnectIgnored(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.IgnoreAdminDisconnect = true })
	a := ts.admin("admin:cli")
	a.send("DISCONNECT")
	a.expect("ACK")
	a.adminJSON("STATUS") // Still serving.
}

// Bounded queues: over the bound a request is rejected and counted, never
// silently lost; the rest are served.
func TestQueueBounds(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxQueue = 2 })
	c := ts.client("c")
	for i := 0; i < 3; i++ {
		c.request("default", "", fmt.Sprint(i))
	}
	st := ts.waitFor("rejection", func(s Stats) bool { return s.Dropped[DropQueueFull] == 1 })
	if st.Waiting != 2 || st.Requests != 3 {
		t.Fatalf("stats %+v", st)
	}
	full := ts.s.Status()
	if q := full.Queues[0]; q.Rejected != 1 || q.Submitted != 3 {
		t.Fatalf("queue status %+v", q)
	}
	ts2 := startServer(t, func(c *Config) { c.MaxQueuedBytes = 100 })
	c2 := ts2.client("c")
	c2.request("default", "", strings.Repeat("x", 40))
	c2.request("default", "", strings.Repeat("x", 40))
	ts2.waitFor("bytes rejection", func(s Stats) bool { return s.Dropped[DropQueueBytes] == 1 && s.Waiting == 1 })
}

// Requests wait for ever by default (as in EventMQ); QueueTimeout expires
// them.
func TestQueueTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.QueueTimeout = 2 * testInterval })
	c := ts.client("c")
	c.request("default", "", "x")
	ts.waitFor("expiry", func(s Stats) bool { return s.Dropped[DropExpired] == 1 && s.Waiting == 0 })
}

// Round-robin across clients: a client with many requests waiting does
// not starve another.
func TestFairAcrossClients(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	flood, other := ts.client("flood"), ts.client("other")
	for i := 0; i < 10; i++ {
		flood.request("default", "", "f")
	}
	ts.waitFor("flood queued", func(s Stats) bool { return s.Waiting == 10 })
	other.request("default", "", "o")
	ts.waitFor("other queued", func(s Stats) bool { return s.Waiting == 11 })
	var seq strings.Builder
	for i := 0; i < 3; i++ {
		jm.send("READY")
		seq.Write(jm.expect("REQUEST")[6])
	}
	if seq.String() != "fof" {
		t.Fatalf("service order %s, want fof", seq.String())
	}
}

// Close says KBYE to every peer; Shutdown waits for what is in flight.
func TestShutdownWaitsForInFlight(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	id := c.request("default", "reply-requested", "slow")
	jm.expect("REQUEST")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		done <- ts.s.Shutdown(ctx)
	}()
	// Still serving replies while draining.
	testutil.Eventually(t, waitLimit, "draining", func() bool {
		var draining bool
		return ts.s.inLoop(func() { draining = ts.s.draining }) && draining
	})
	jm.quiet()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	jm.send("REPLY", `{"value": 1}`, id)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Shutdown did not return")
	}
	jm.expect("KBYE")
	c.expect("REPLY") // ACK
	if r := c.expect("REPLY"); string(r[5]) != id {
		t.Fatalf("reply %q", r)
	}
}

func TestShutdownTimeout(t *testing.T) {
	ts := startServer(t)
	jm := ts.jobManager("jm-1", "")
	c := ts.client("c")
	jm.send("READY")
	c.request("default", "reply-requested", "never answered")
	jm.expect("REQUEST")
	ctx, cancel := context.WithTimeout(context.Background(), 2*testInterval)
	defer cancel()
	if err := ts.s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	// Bad configurations name the field.
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"Frontend", Config{Backend: "tcp://127.0.0.1:*"}},
		{"Backend", Config{Frontend: "tcp://127.0.0.1:*"}},
		{"Frontend", Config{Frontend: "udp://x", Backend: "tcp://127.0.0.1:*"}},
		{"PubOut", Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", PubIn: "tcp://127.0.0.1:*"}},
		{"HeartbeatTimeout", Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", HeartbeatInterval: time.Second, HeartbeatTimeout: time.Second}},
		{"MaxQueue", Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", MaxQueue: -1}},
		{"DefaultQueues", Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", DefaultQueues: []wire.QueueSpec{{Name: ""}}}},
	} {
		_, err := New(tc.cfg)
		var ce *ConfigError
		if !errors.Is(err, ErrConfig) || !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("New(%+v) = %v, want a ConfigError naming %s", tc.cfg, err, tc.field)
		}
	}
	// A port in use fails New and releases everything.
	ts := startServer(t)
	if _, err := New(Config{Frontend: "tcp://127.0.0.1:*", Backend: ts.ep.Backend, Logger: testutil.Logger()}); err == nil {
		t.Fatal("bound a port in use")
	}
	// Close before Run; Run after Close.
	s, err := New(Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Workers != 0 {
		t.Fatal("Stats before Run")
	}
	s.Close()
	s.Close()
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
	// Run twice; context cancellation stops it.
	s2, err := New(Config{Frontend: "tcp://127.0.0.1:*", Backend: "tcp://127.0.0.1:*", Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s2.Run(ctx) }()
	testutil.Eventually(t, waitLimit, "the loop running", func() bool { return s2.inLoop(func() {}) })
	if err := s2.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	s2.Close()
	if ep := s2.Endpoints(); ep.Admin != "" || ep.PubOut != "" || !strings.HasPrefix(ep.Frontend, "tcp://127.0.0.1:") {
		t.Fatalf("Endpoints %+v", ep)
	}
}
