package zmtp

import (
	"net"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// rawFrames reads frames from nc for d and returns them.
func rawFrames(t *testing.T, nc net.Conn, d time.Duration) (cmds []string, msgs [][]byte) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	defer nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		flags, body, err := readRawFrame(nc)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return cmds, msgs
			}
			t.Fatalf("raw peer read: %v", err)
		}
		if flags&wire.FlagCommand != 0 {
			name, _, err := wire.ParseCommand(body)
			if err != nil {
				t.Fatalf("engine sent a malformed command %q", body)
			}
			cmds = append(cmds, name)
		} else {
			msgs = append(msgs, body)
		}
	}
}

// A ZMTP 3.0 peer (libzmq 4.1 to 4.3.2) does not know PING: 37/ZMTP
// commands go only to 3.1 peers. The same peer announcing 3.1 gets PINGs
// in the same window (the control that shows the window is long enough).
func TestZMTP30PeerGetsNoPing(t *testing.T) {
	for _, minor := range []byte{0, 1} {
		r := newSock(t, NewContext(), Router, Options{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: time.Hour})
		ep := bind(t, r, "tcp://127.0.0.1:*")
		nc := dialRaw(t, ep)
		if g := nullHandshake(t, nc, minor, "DEALER", "raw"); g.Major != 3 || g.Minor != 1 {
			t.Fatalf("engine greeting %+v", g)
		}
		// The message path works both ways.
		nc.Write(rawMessage([]byte("hi")))
		if m := recvWait(t, r, 10*time.Second); string(m[0]) != "raw" || string(m[1]) != "hi" {
			t.Fatalf("got %q", m)
		}
		if err := r.Send([][]byte{[]byte("raw"), []byte("back")}, false); err != nil {
			t.Fatal(err)
		}
		cmds, msgs := rawFrames(t, nc, 600*time.Millisecond)
		if len(msgs) != 1 || string(msgs[0]) != "back" {
			t.Fatalf("3.%d peer got messages %q", minor, msgs)
		}
		pings := 0
		for _, c := range cmds {
			if c != "PING" {
				t.Fatalf("3.%d peer got command %s", minor, c)
			}
			pings++
		}
		t.Logf("ZMTP 3.%d peer: %d PINGs in 600 ms at a 50 ms interval", minor, pings)
		if minor == 0 && pings != 0 {
			t.Fatalf("ZMTP 3.0 peer got %d PINGs", pings)
		}
		if minor == 1 && pings == 0 {
			t.Fatal("ZMTP 3.1 peer got no PING: the window proves nothing")
		}
	}
}

// A 3.1 peer that answers no PING is dropped after HeartbeatTimeout: the
// negative control of TestInteropWeHeartbeatLibzmq.
func TestHeartbeatTimeoutCloses(t *testing.T) {
	r := newSock(t, NewContext(), Router, Options{HeartbeatInterval: 50 * time.Millisecond, HeartbeatTimeout: 200 * time.Millisecond})
	ep := bind(t, r, "tcp://127.0.0.1:*")
	nc := dialRaw(t, ep)
	nullHandshake(t, nc, 1, "DEALER", "")
	waitClosed(t, nc)
	testutil.Eventually(t, 10*time.Second, "disconnection counted", func() bool { return r.Stats().Disconnected == 1 })
}

// Subscriptions in both forms reach our PUB: 23/ZMTP's message with a
// leading 1 (0 cancels) from a 3.0 peer, and 37/ZMTP's SUBSCRIBE and
// CANCEL commands from a 3.1 peer.
func TestPubSubscriptionForms(t *testing.T) {
	for _, minor := range []byte{0, 1} {
		p := newSock(t, NewContext(), Pub, Options{})
		ep := bind(t, p, "tcp://127.0.0.1:*")
		nc := dialRaw(t, ep)
		nullHandshake(t, nc, minor, "SUB", "")
		sub := func(on bool, topic string) []byte {
			if minor == 0 {
				return rawMessage(append([]byte{btob(on)}, topic...))
			}
			name := "SUBSCRIBE"
			if !on {
				name = "CANCEL"
			}
			return wire.AppendCommand(nil, name, []byte(topic))
		}
		nc.Write(append(sub(true, "a"), sub(true, "c")...))
		// Publish until both subscriptions have arrived (a PUB drops what
		// nobody subscribed to); "b" must never come.
		seen := map[string]int{}
		deadline := time.Now().Add(10 * time.Second)
		for (seen["a1"] == 0 || seen["c1"] == 0) && time.Now().Before(deadline) {
			for _, topic := range []string{"a1", "b1", "c1"} {
				if err := p.Send([][]byte{[]byte(topic)}, true); err != nil {
					t.Fatal(err)
				}
			}
			_, msgs := rawFrames(t, nc, 20*time.Millisecond)
			for _, m := range msgs {
				seen[string(m)]++
			}
		}
		if seen["a1"] == 0 || seen["c1"] == 0 || len(seen) != 2 {
			t.Fatalf("3.%d SUB got %v", minor, seen)
		}
		// Cancel "c": only "a" still comes.
		nc.Write(sub(false, "c"))
		got := map[string]int{}
		for got["a1"] < 3 && time.Now().Before(deadline) {
			p.Send([][]byte{[]byte("c1")}, true)
			p.Send([][]byte{[]byte("a1")}, true)
			_, msgs := rawFrames(t, nc, 20*time.Millisecond)
			for _, m := range msgs {
				got[string(m)]++
			}
		}
		if got["a1"] < 3 {
			t.Fatalf("3.%d SUB after CANCEL: %v", minor, got)
		}
		// Frames of c1 may have been in flight when the cancel arrived;
		// once a1 came three times after it, c1 must have stopped.
		before := got["c1"]
		for i := 0; i < 3; i++ {
			p.Send([][]byte{[]byte("c1")}, true)
			p.Send([][]byte{[]byte("a1")}, true)
		}
		if _, msgs := rawFrames(t, nc, 100*time.Millisecond); len(msgs) != 3 {
			t.Fatalf("3.%d SUB after CANCEL: %q (c1 %d times before)", minor, msgs, before)
		} else if string(msgs[0]) != "a1" || string(msgs[2]) != "a1" {
			t.Fatalf("3.%d SUB after CANCEL: %q", minor, msgs)
		}
	}
}

// Our SUB sends its subscriptions in the form the peer's version knows.
func TestSubSendsSubscriptionForm(t *testing.T) {
	for _, minor := range []byte{0, 1} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s := newSock(t, NewContext(), Sub, Options{Subscribe: [][]byte{[]byte("topic")}})
		if err := s.Connect("tcp://" + ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		nullHandshake(t, nc, minor, "PUB", "")
		// The owner sends subscriptions when it learns of the connection,
		// in Recv or WaitReadable: keep it waiting while the peer reads.
		type frame struct {
			flags byte
			body  []byte
			err   error
		}
		got := make(chan frame, 1)
		go func() {
			flags, body, err := readRawFrame(nc)
			got <- frame{flags, body, err}
		}()
		var f frame
	wait:
		for {
			select {
			case f = <-got:
				break wait
			default:
				if _, err := s.WaitReadable(10 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
			}
		}
		flags, body := f.flags, f.body
		if f.err != nil {
			t.Fatal(f.err)
		}
		if minor == 0 && (flags != 0 || string(body) != "\x01topic") {
			t.Fatalf("to a 3.0 PUB: flags %#x %q, want the message \\x01topic", flags, body)
		}
		if minor == 1 && (flags != wire.FlagCommand || string(body) != "\x09SUBSCRIBEtopic") {
			t.Fatalf("to a 3.1 PUB: flags %#x %q, want the SUBSCRIBE command", flags, body)
		}
		nc.Write(rawMessage([]byte("topic-1"), []byte("body")))
		if m := recvWait(t, s, 10*time.Second); string(m[0]) != "topic-1" {
			t.Fatalf("got %q", m)
		}
	}
}
