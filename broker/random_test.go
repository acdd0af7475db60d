package broker

// Random frame lists and raw TCP garbage: nothing wedges or leaks the
// broker.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/mdp"
)

// randomMessage returns a frame list mixing valid MDP pieces, identities of
// the test's peers and junk, so that some messages get deep into dispatch.
func randomMessage(r *rand.Rand, ids [][]byte) [][]byte {
	junk := func() []byte {
		b := make([]byte, r.IntN(65))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	n := r.IntN(21)
	if r.IntN(4) == 0 { // Pure junk.
		f := make([][]byte, n)
		for i := range f {
			f[i] = junk()
		}
		return f
	}
	headers := []string{hC1, hW1, hC2, hW2}
	services := []string{"r.a", "r.b", "", "mmi.service", "mmi.services", "mmi.workers", "mmi.zz", "mmi."}
	var f [][]byte
	if r.IntN(2) == 0 {
		f = append(f, []byte{})
	}
	switch r.IntN(10) {
	case 0:
		f = append(f, junk())
	case 1: // A header with one byte changed.
		h := []byte(headers[r.IntN(4)])
		h[r.IntN(6)] ^= byte(1 + r.IntN(255))
		f = append(f, h)
	default:
		f = append(f, []byte(headers[r.IntN(4)]))
	}
	if r.IntN(5) > 0 {
		f = append(f, []byte{byte(r.IntN(9))})
	}
	for len(f) < n {
		switch r.IntN(6) {
		case 0:
			f = append(f, []byte{})
		case 1:
			f = append(f, []byte(services[r.IntN(len(services))]))
		case 2:
			f = append(f, ids[r.IntN(len(ids))])
		default:
			f = append(f, junk())
		}
	}
	if len(f) > n && r.IntN(3) > 0 {
		f = f[:n]
	}
	if len(f) > 20 {
		f = f[:20]
	}
	return f
}

// TestRandomFramesDoNotWedge sends 3000 random frame lists from several
// peers, plus garbage on raw TCP connections, and checks that the broker
// forgets everything they created, still serves normal traffic, and leaks no
// goroutine.
func TestRandomFramesDoNotWedge(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := tcpConfig()
	cfg.RequestTimeout = 200 * time.Millisecond
	cfg.ServiceTTL = 200 * time.Millisecond
	b := startBroker(t, cfg)

	const nPeers, nMessages = 8, 3000
	r := rand.New(rand.NewPCG(20240601, 7))
	ids := make([][]byte, nPeers)
	peers := make([]*peer, nPeers)
	for i := range peers {
		ids[i] = []byte(fmt.Sprintf("rnd-%d", i))
		peers[i] = newPeerID(t, b.ep, ids[i])
	}
	sent, empty := 0, 0
	for i := 0; i < nMessages; i++ {
		f := randomMessage(r, ids)
		if len(f) == 0 {
			empty++ // A ZeroMQ message cannot have zero frames.
			continue
		}
		peers[r.IntN(nPeers)].send(f...)
		sent++
	}
	// A marker per peer: an MMI request whose reply proves that the broker
	// has handled everything that peer sent before it.
	for i, p := range peers {
		marker := fmt.Sprintf("mmi.marker-%d", i)
		p.request(mdp.V2, marker, "x")
		deadline := time.Now().Add(3 * time.Second)
		for {
			f := p.recv(time.Until(deadline))
			if f == nil {
				t.Fatalf("peer %d: no reply to its marker; broker wedged? stats %+v", i, b.Stats())
			}
			if m, err := mdp.DecodeFromBroker(f); err == nil && m.Command == mdp.Final && string(m.Service) == marker {
				break
			}
		}
	}
	s := b.Stats()
	t.Logf("random: %d messages sent (%d empty skipped); dropped %d %v; requests %d, registered %d, removed %v",
		sent, empty, s.TotalDropped(), s.Dropped, s.Requests, s.Registered, s.Removed)
	if s.TotalDropped() == 0 {
		t.Errorf("no message dropped out of %d random ones", sent)
	}
	for _, p := range peers {
		p.close()
	}

	// Raw TCP garbage: not even ZMTP.
	hostport := strings.TrimPrefix(b.ep, "tcp://")
	greeting := append([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0}, []byte("NULL")...)
	greeting = append(greeting, make([]byte, 16+1+31)...)
	for i, payload := range [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		hjunk(11, 4096),
		append(bytes.Clone(greeting), hjunk(12, 512)...),
		append(bytes.Clone(greeting), 0x06, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), // Huge long frame.
	} {
		conn, err := net.DialTimeout("tcp", hostport, time.Second)
		if err != nil {
			t.Fatalf("raw %d: %v", i, err)
		}
		conn.SetDeadline(time.Now().Add(testutil.WaitLimit))
		if len(payload) > 0 {
			conn.Write(payload)
			// The broker closes a connection that is not ZMTP, or whose
			// handshake or first frame is bad: read its side to EOF.
			if _, err := io.Copy(io.Discard, conn); err != nil {
				t.Errorf("raw %d: the broker did not close the connection: %v", i, err)
			}
		}
		conn.Close()
	}

	// Everything the random peers created goes away: workers expire or
	// become unreachable, queued requests expire, services are forgotten.
	waitFor(t, b, "state left by random peers to drain", func(s Stats) bool {
		return s.Workers == 0 && s.Queued == 0 && s.QueuedBytes == 0 && s.Services == 0
	})

	normal := checkNormalTraffic(t, b, "after.random")
	if s := b.Stats(); s.TotalDropped() == 0 {
		t.Errorf("TotalDropped = 0")
	}

	for _, p := range normal {
		p.close()
	}
	b.Close()
	if !testutil.Poll(3*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines+2 }) {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("goroutines: %d before, %d after\n%s", goroutines, runtime.NumGoroutine(), buf)
	}
}
