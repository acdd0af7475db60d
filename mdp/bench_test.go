package mdp_test

import (
	"testing"

	"github.com/majordomo-go/majordomo/mdp"
)

// Package-level sinks keep the compiler from discarding the work measured.
var (
	sinkMsg    mdp.Message
	sinkFrames [][]byte
	sinkErr    error
)

// The two hottest messages in a broker: a worker's FINAL and a client's
// REQUEST, each with a typical small body.
var (
	benchWorkerFinal   = fr("MDPW02", w2Final, clientAddr, "", "reply body")
	benchClientRequest = fr("MDPC02", c2Request, "echo", "request body")
	benchAppendMsg     = mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Request,
		Client: []byte(clientAddr), Body: bodies("request body")}
)

func BenchmarkDecodeWorkerFinal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkMsg, sinkErr = mdp.DecodeToBroker(benchWorkerFinal)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkDecodeClientRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkMsg, sinkErr = mdp.DecodeToBroker(benchClientRequest)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

// BenchmarkAppend encodes into a reused slice with a routing identity in
// front, as the broker does before sending on its ROUTER socket.
func BenchmarkAppend(b *testing.B) {
	b.ReportAllocs()
	buf := make([][]byte, 0, 16)
	id := []byte("worker-1")
	for b.Loop() {
		buf = append(buf[:0], id)
		buf, sinkErr = mdp.Append(buf, &benchAppendMsg)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
	sinkFrames = buf
}

// TestZeroAllocs pins the no-copy design: decoding a valid message and
// appending into a slice with room must not allocate. Allocation counts are
// deterministic, unlike timings. (They assume the default optimising build;
// -gcflags=-N would make locals escape.)
func TestZeroAllocs(t *testing.T) {
	type check struct {
		name string
		fn   func()
	}
	hb := fr("MDPW02", w2Heartbeat)
	v1Reply := fr("MDPC01", "echo", "hello")
	checks := []check{
		{"DecodeWorkerFinal", func() { sinkMsg, sinkErr = mdp.DecodeToBroker(benchWorkerFinal) }},
		{"DecodeClientRequest", func() { sinkMsg, sinkErr = mdp.DecodeToBroker(benchClientRequest) }},
		{"DecodeHeartbeat", func() { sinkMsg, sinkErr = mdp.DecodeFromBroker(hb) }},
		{"DecodeV1ClientReply", func() { sinkMsg, sinkErr = mdp.DecodeFromBroker(v1Reply) }},
	}
	buf := make([][]byte, 0, 16)
	for _, tc := range validCases {
		m := tc.want
		checks = append(checks, check{"Append/" + tc.name, func() { sinkFrames, sinkErr = mdp.Append(buf[:0], &m) }})
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(100, c.fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", c.name, n)
		}
		if sinkErr != nil {
			t.Errorf("%s: %v", c.name, sinkErr)
		}
	}
	// Encode allocates only the frame slice itself: no frame is copied.
	m := benchAppendMsg
	if n := testing.AllocsPerRun(100, func() { sinkFrames, sinkErr = mdp.Encode(&m) }); n != 1 {
		t.Errorf("Encode: %v allocs/op, want 1", n)
	}
}
