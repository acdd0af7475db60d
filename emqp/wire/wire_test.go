package wire

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func fr(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// TestConstants pins every wire constant to EventMQ's spelling: a change
// here breaks real peers.
func TestConstants(t *testing.T) {
	if Protocol != "eMQP/1.0" {
		t.Fatal("protocol frame")
	}
	want := map[Command]string{
		Inform: "INFORM", Ack: "ACK", Ready: "READY", Request: "REQUEST",
		Reply: "REPLY", Heartbeat: "HEARTBEAT", Schedule: "SCHEDULE",
		Unschedule: "UNSCHEDULE", Publish: "PUBLISH", Disconnect: "DISCONNECT",
		Kbye: "KBYE", Kbai: "KBAI", Hello: "HELLO", Status: "STATUS",
		ShowWorkers: "ROUTER_SHOW_WORKERS", ShowSchedulers: "ROUTER_SHOW_SCHEDULERS",
	}
	if len(Commands()) != len(want) {
		t.Fatalf("%d commands, %d pinned", len(Commands()), len(want))
	}
	for c, name := range want {
		if c.String() != name || string(commandBytes[c]) != name {
			t.Errorf("command %d is %q, want %q", c, c, name)
		}
	}
	if Command(0).String() != "COMMAND(0)" || Command(200).String() != "COMMAND(200)" {
		t.Error("unknown command names")
	}
	for _, tc := range []struct {
		got, want any
	}{
		{TypeWorker, "worker"}, {TypeScheduler, "scheduler"},
		{DefaultQueue, "default"}, {DefaultWeight, 10},
		{PortBackend, 47290}, {PortFrontend, 47291}, {PortAdmin, 47293},
		{PortPublishIn, 47298}, {PortPublishOut, 47299},
		{HeartbeatInterval, 3}, {HeartbeatTimeout, 5},
		{HeaderReplyRequested, "reply-requested"}, {HeaderGuarantee, "guarantee"},
		{HeaderRetryCount, "retry-count"}, {HeaderTimeout, "timeout"},
		{HeaderNohaste, "nohaste"}, {HeaderRunCount, "run_count"},
	} {
		if tc.got != tc.want {
			t.Errorf("constant %v, want %v", tc.got, tc.want)
		}
	}
	for c, a := range map[Command][2]int{
		Inform: {2, 2}, Ack: {1, 1}, Ready: {0, 0}, Request: {3, 3}, Reply: {1, 2},
		Heartbeat: {0, 1}, Schedule: {3, 5}, Unschedule: {3, 5}, Publish: {2, 3},
		Disconnect: {0, 1}, Kbye: {0, 0}, Kbai: {0, 0}, Hello: {0, 1}, Status: {0, 1},
		ShowWorkers: {0, 0}, ShowSchedulers: {0, 0},
	} {
		if lo, hi := Arity(c); lo != a[0] || hi != a[1] {
			t.Errorf("%s arity %d..%d, want %d..%d", c, lo, hi, a[0], a[1])
		}
	}
	if lo, hi := Arity(0); lo != 0 || hi != 0 {
		t.Error("Arity(0)")
	}
}

type decodeCase struct {
	name   string
	frames [][]byte
}

// validCases are messages as EventMQ's peers send them.
var validCases = []decodeCase{
	{"inform-worker", fr("", Protocol, "INFORM", "id-1", `[[10, "default"], [20, "email"]]`, "worker")},
	{"inform-default-queues", fr("", Protocol, "INFORM", "id-2", "", "worker")},
	{"inform-scheduler", fr("", Protocol, "INFORM", "id-3", "", "scheduler")},
	{"ack", fr("", Protocol, "ACK", "id-4", "id-1")},
	{"ready", fr("", Protocol, "READY", "id-5")},
	{"request", fr("", Protocol, "REQUEST", "id-6", "default", "reply-requested,guarantee", `["run", {"callable": "f", "path": "m"}]`)},
	{"request-no-headers", fr("", Protocol, "REQUEST", "id-7", "email", "", "{}")},
	{"reply-from-worker", fr("", Protocol, "REPLY", "id-8", `{"value": 42}`, "id-6")},
	{"reply-ack-to-client", fr("", Protocol, "REPLY", "id-9", "id-6")},
	{"heartbeat", fr("", Protocol, "HEARTBEAT", "id-10", "1700000000.123456")},
	{"heartbeat-bare", fr("", Protocol, "HEARTBEAT", "id-11")},
	{"schedule", fr("", Protocol, "SCHEDULE", "id-12", "default", "guarantee", "60", `["run", {}]`, "")},
	{"schedule-cron", fr("", Protocol, "SCHEDULE", "id-13", "default", "", "-1", `["run", {}]`, "*/5 * * * *")},
	{"schedule-spec", fr("", Protocol, "SCHEDULE", "id-14", "default", "", `["run", {}]`)},
	{"unschedule", fr("", Protocol, "UNSCHEDULE", "id-15", "default", "", "-1", `["run", {}]`, "")},
	{"publish", fr("", Protocol, "PUBLISH", "id-16", "topic", `{"a": 1}`)},
	{"publish-headers", fr("", Protocol, "PUBLISH", "id-17", "topic", "", "msg")},
	{"disconnect", fr("", Protocol, "DISCONNECT", "id-18")},
	{"kbye", fr("", Protocol, "KBYE", "id-19")},
	{"kbai", fr("", Protocol, "KBAI", "id-20")},
	{"hello", fr("", Protocol, "HELLO", "admin:id-21")},
	{"status", fr("", Protocol, "STATUS", "admin:id-22")},
	{"status-show-managers", fr("", Protocol, "STATUS", "admin:id-23", "show_managers")},
	{"show-workers", fr("", Protocol, "ROUTER_SHOW_WORKERS", "admin:id-24")},
	{"show-schedulers", fr("", Protocol, "ROUTER_SHOW_SCHEDULERS", "admin:id-25")},
	{"binary-payload", fr("", Protocol, "REQUEST", "\x00\xff", "q", "", "\x00\x01\x02")},
}

// malformedCases each break one rule.
var malformedCases = []struct {
	decodeCase
	err error
}{
	{decodeCase{"no-frames", nil}, ErrEmpty},
	{decodeCase{"delimiter-missing", fr(Protocol, "READY", "id")}, ErrDelimiter},
	{decodeCase{"only-delimiter", fr("")}, ErrShort},
	{decodeCase{"mdp-header", fr("", "MDPW01", "\x01", "echo")}, ErrProtocol},
	{decodeCase{"protocol-lowercase", fr("", "emqp/1.0", "READY", "id")}, ErrProtocol},
	{decodeCase{"no-command", fr("", Protocol)}, ErrShort},
	{decodeCase{"unknown-command", fr("", Protocol, "FROB", "id")}, ErrCommand},
	{decodeCase{"lowercase-command", fr("", Protocol, "ready", "id")}, ErrCommand},
	{decodeCase{"empty-command", fr("", Protocol, "", "id")}, ErrCommand},
	{decodeCase{"no-msgid", fr("", Protocol, "READY")}, ErrMsgID},
	{decodeCase{"empty-msgid", fr("", Protocol, "READY", "")}, ErrMsgID},
	{decodeCase{"long-msgid", fr("", Protocol, "READY", strings.Repeat("x", 256))}, ErrMsgID},
	{decodeCase{"ready-extra", fr("", Protocol, "READY", "id", "x")}, ErrExtraFrames},
	{decodeCase{"inform-short", fr("", Protocol, "INFORM", "id", "[]")}, ErrShort},
	{decodeCase{"inform-extra", fr("", Protocol, "INFORM", "id", "", "worker", "x")}, ErrExtraFrames},
	{decodeCase{"request-short", fr("", Protocol, "REQUEST", "id", "q", "")}, ErrShort},
	{decodeCase{"request-extra", fr("", Protocol, "REQUEST", "id", "q", "", "p", "x")}, ErrExtraFrames},
	{decodeCase{"reply-short", fr("", Protocol, "REPLY", "id")}, ErrShort},
	{decodeCase{"reply-extra", fr("", Protocol, "REPLY", "id", "a", "b", "c")}, ErrExtraFrames},
	{decodeCase{"ack-short", fr("", Protocol, "ACK", "id")}, ErrShort},
	{decodeCase{"schedule-short", fr("", Protocol, "SCHEDULE", "id", "q", "")}, ErrShort},
	{decodeCase{"schedule-extra", fr("", Protocol, "SCHEDULE", "id", "q", "", "1", "j", "c", "x")}, ErrExtraFrames},
	{decodeCase{"publish-short", fr("", Protocol, "PUBLISH", "id", "topic")}, ErrShort},
	{decodeCase{"kbye-extra", fr("", Protocol, "KBYE", "id", "x")}, ErrExtraFrames},
	{decodeCase{"heartbeat-extra", fr("", Protocol, "HEARTBEAT", "id", "1", "2")}, ErrExtraFrames},
	{decodeCase{"show-workers-extra", fr("", Protocol, "ROUTER_SHOW_WORKERS", "id", "x")}, ErrExtraFrames},
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range validCases {
		m, err := Decode(tc.frames)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if m.Command.String() != string(tc.frames[2]) || !bytes.Equal(m.MsgID, tc.frames[3]) || len(m.Args) != len(tc.frames)-4 {
			t.Errorf("%s: decoded %s %q %q", tc.name, m.Command, m.MsgID, m.Args)
		}
		for i, a := range m.Args {
			if len(a) > 0 && &a[0] != &tc.frames[4+i][0] {
				t.Errorf("%s: argument %d copied", tc.name, i)
			}
		}
		enc, err := Encode(&m)
		if err != nil {
			t.Errorf("%s: Encode: %v", tc.name, err)
			continue
		}
		if d := diffFrames(enc, tc.frames); d != "" {
			t.Errorf("%s: round trip: %s", tc.name, d)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		_, err := Decode(tc.frames)
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, tc.err) || de.Err != tc.err {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.err)
			continue
		}
		if de.Error() == "" || !strings.HasPrefix(de.Error(), tc.err.Error()) {
			t.Errorf("%s: message %q", tc.name, de.Error())
		}
	}
}

func TestMessageArg(t *testing.T) {
	m, _ := Decode(fr("", Protocol, "REQUEST", "id", "q", "h", "p"))
	if string(m.Arg(0)) != "q" || string(m.Arg(2)) != "p" || m.Arg(3) != nil || m.Arg(-1) != nil {
		t.Fatal("Arg")
	}
}

func TestAppendRefusesInvalid(t *testing.T) {
	dst := fr("identity")
	for _, m := range []Message{
		{Command: 0, MsgID: []byte("x")},
		{Command: numCommands, MsgID: []byte("x")},
		{Command: Ready},
		{Command: Ready, MsgID: bytes.Repeat([]byte("x"), 256)},
		{Command: Ready, MsgID: []byte("x"), Args: fr("extra")},
		{Command: Request, MsgID: []byte("x"), Args: fr("q")},
	} {
		out, err := Append(dst, &m)
		if !errors.Is(err, ErrEncode) || len(out) != 1 {
			t.Errorf("Append(%+v) = %q, %v", m, out, err)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	frames := validCases[5].frames
	var dst [][]byte
	m := Message{Command: Reply, MsgID: []byte("id"), Args: fr("x", "y")}
	allocs := testing.AllocsPerRun(1000, func() {
		got, err := Decode(frames)
		if err != nil || got.Command != Request {
			panic("decode")
		}
		dst, _ = Append(dst[:0], &m)
		_ = ParseHeaders(got.Args[1])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decode+append+headers, want 0", allocs)
	}
	g := NewIDGen()
	buf := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(1000, func() { buf = g.Append(buf[:0]) }); a != 0 {
		t.Fatalf("IDGen: %v allocations", a)
	}
}

func TestParseHeaders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Headers
	}{
		{"", Headers{RetryCount: -1, RunCount: -1}},
		{"reply-requested", Headers{ReplyRequested: true, RetryCount: -1, RunCount: -1}},
		{"reply-requested,guarantee,retry-count:3,timeout:30", Headers{ReplyRequested: true, Guarantee: true, RetryCount: 3, Timeout: 30, RunCount: -1}},
		{" guarantee , nohaste,run_count:5", Headers{Guarantee: true, Nohaste: true, RetryCount: -1, RunCount: 5}},
		{"retry-count:x,timeout:,run_count:-1,retry-count", Headers{RetryCount: -1, RunCount: -1}},
		{"retry-count:0", Headers{RetryCount: 0, RunCount: -1}},
		{"retry-count:99999999999", Headers{RetryCount: -1, RunCount: -1}},
		{",,unknown:7,", Headers{RetryCount: -1, RunCount: -1}},
	} {
		if got := ParseHeaders([]byte(tc.in)); got != tc.want {
			t.Errorf("ParseHeaders(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestWithHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "reply-requested"},
		{"guarantee", "guarantee,reply-requested"},
		{"guarantee,reply-requested", "guarantee,reply-requested"},
		{" reply-requested ", " reply-requested "},
		{"  ", "  reply-requested"},
	} {
		in := []byte(tc.in)
		orig := string(in)
		if got := string(WithHeader(in, HeaderReplyRequested)); got != tc.want {
			t.Errorf("WithHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if string(in) != orig {
			t.Errorf("WithHeader wrote its input")
		}
	}
}

func TestParseQueues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		err  bool
	}{
		{"", "[]", false},
		{"[]", "[]", false},
		{`[[10, "default"]]`, "[{10 default}]", false},
		{`[[10, "default"], [20, "email"]]`, "[{10 default} {20 email}]", false},
		{`[["email", 30]]`, "[{30 email}]", false},
		{`["reports"]`, "[{10 reports}]", false},
		{`[[0, "low"], [-5, "neg"], [2.7, "frac"], [1e12, "huge"]]`, "[{1 low} {1 neg} {2 frac} {1000000 huge}]", false},
		{`[[10, ""]]`, "", true},
		{`[[10, "a", 3]]`, "", true},
		{`[[10, 20]]`, "", true},
		{`[{"a": 1}]`, "", true},
		{`{"default": 10}`, "", true},
		{`[[10, "default"]`, "", true},
		{"default", "", true},
		{`[[10, "` + strings.Repeat("q", 256) + `"]]`, "", true},
		{"[" + strings.Repeat(`"q",`, MaxInformQueues) + `"q"]`, "", true},
		// Padding past MaxQueuesLen is refused before parsing.
		{`["q"` + strings.Repeat(" ", MaxQueuesLen) + `]`, "", true},
	} {
		got, err := ParseQueues([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("ParseQueues(%.40q): error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrQueues) {
				t.Errorf("ParseQueues(%.40q): %v does not wrap ErrQueues", tc.in, err)
			}
			continue
		}
		if s := fmt.Sprint(got); !(s == tc.want || (len(got) == 0 && tc.want == "[]")) {
			t.Errorf("ParseQueues(%q) = %s, want %s", tc.in, s, tc.want)
		}
	}
}

// The largest valid list, every name of the longest length written
// entirely as \u escapes with a large weight, fits MaxQueuesLen.
func TestParseQueuesLargestValid(t *testing.T) {
	name := strings.Repeat(`\u0071`, MaxQueueNameLen)
	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < MaxInformQueues; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `[1000000000000000000000000, "%s%c"]`, name[:len(name)-6], 'a'+i%26)
	}
	b.WriteString("]")
	if b.Len() > MaxQueuesLen {
		t.Fatalf("%d bytes, MaxQueuesLen %d", b.Len(), MaxQueuesLen)
	}
	got, err := ParseQueues([]byte(b.String()))
	if err != nil || len(got) != MaxInformQueues || len(got[0].Name) != MaxQueueNameLen {
		t.Fatalf("ParseQueues: %d queues, %v", len(got), err)
	}
}

func TestIDGen(t *testing.T) {
	g := NewIDGen()
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := string(g.Append(nil))
		if !re.MatchString(id) {
			t.Fatalf("id %q is not UUID4-shaped", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	if NewIDGen().hi == g.hi {
		t.Fatal("two generators share a base")
	}
	if ts := string(Timestamp(nil, 1_700_000_000_500_000_000)); ts != "1700000000.500000" {
		t.Fatalf("Timestamp %q", ts)
	}
}

func diffFrames(got, want [][]byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d frames %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Sprintf("frame %d is %q, want %q", i, got[i], want[i])
		}
	}
	return ""
}
