package mech

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// cipherPair returns the two ends of one CURVE session, after a real handshake.
func cipherPair(t testing.TB) (client, server *curveCipher) {
	t.Helper()
	sk, ck := mustKeys(t), mustKeys(t)
	ccfg := &Config{Mechanism: Curve, PublicKey: ck.pub, SecretKey: ck.sec, ServerKey: sk.pub}
	scfg := &Config{Mechanism: Curve, Server: true, PublicKey: sk.pub, SecretKey: sk.sec}
	type r struct {
		res Result
		err error
	}
	cdone := make(chan r, 1)
	cconn := &chanConn{in: make(chan command, 4), out: make(chan command, 4)}
	sconn := &chanConn{in: cconn.out, out: cconn.in}
	go func() {
		res, err := Handshake(cconn, ccfg)
		cdone <- r{res, err}
	}()
	sres, serr := Handshake(sconn, scfg)
	c := <-cdone
	if serr != nil || c.err != nil {
		t.Fatalf("handshake: client %v server %v", c.err, serr)
	}
	return c.res.Cipher.(*curveCipher), sres.Cipher.(*curveCipher)
}

// chanConn carries commands over channels (buffered, so no side blocks).
type chanConn struct{ in, out chan command }

func (c *chanConn) ReadCommand() (string, []byte, error) {
	m := <-c.in
	return m.name, m.data, nil
}

func (c *chanConn) WriteCommand(name string, data []byte) error {
	c.out <- command{name, append([]byte(nil), data...)}
	return nil
}

// frameBody strips the frame header Seal wrote and checks its flags and size.
func frameBody(t *testing.T, frame []byte) []byte {
	t.Helper()
	if len(frame) < 2 {
		t.Fatalf("frame of %d bytes", len(frame))
	}
	switch frame[0] {
	case 0x00:
		if int(frame[1]) != len(frame)-2 {
			t.Fatalf("short size %d for %d bytes", frame[1], len(frame)-2)
		}
		if len(frame)-2 > 255 {
			t.Fatal("short frame above 255 bytes")
		}
		return frame[2:]
	case 0x02:
		if n := binary.BigEndian.Uint64(frame[1:9]); n != uint64(len(frame)-9) || n <= 255 {
			t.Fatalf("long size %d for %d bytes", n, len(frame)-9)
		}
		return frame[9:]
	}
	t.Fatalf("frame flags %#x", frame[0])
	return nil
}

func TestCipherRoundTripAndFormat(t *testing.T) {
	cc, sc := cipherPair(t)
	if cc.sendNonce != 3 || sc.sendNonce != 2 || cc.recvNonce != 1 || sc.recvNonce != 2 {
		t.Fatalf("nonces after handshake: client send %d recv %d, server send %d recv %d (libzmq: 3/1, 2/2)",
			cc.sendNonce, cc.recvNonce, sc.sendNonce, sc.recvNonce)
	}
	for _, size := range []int{0, 1, 31, 32, 33, 222, 223, 255, 256, 4096, 65536, maxScratch + 7} {
		body := bytes.Repeat([]byte{byte(size)}, size)
		for _, fl := range []byte{0, FlagMore, FlagCommand, 0xff} {
			prefix := []byte("keep")
			frame, err := cc.Seal(prefix, fl, body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(frame[:4], prefix) {
				t.Fatal("Seal did not append")
			}
			if added := len(frame) - 4 - size; added > cc.Overhead() {
				t.Fatalf("size %d: Seal added %d bytes, Overhead %d", size, added, cc.Overhead())
			}
			cmd := frameBody(t, frame[4:])
			if len(cmd) != 33+size || string(cmd[:8]) != "\x07MESSAGE" {
				t.Fatalf("size %d: command of %d bytes %q", size, len(cmd), cmd[:8])
			}
			gotFl, got, err := sc.Open(cmd)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if gotFl != fl&innerFlags || !bytes.Equal(got, body) {
				t.Fatalf("size %d flags %#x: got flags %#x, %d bytes", size, fl, gotFl, len(got))
			}
			if size > 0 && &got[0] != &cmd[messageHeader+1] {
				t.Fatal("plaintext does not alias the command body")
			}
		}
	}
	if cap(cc.sealBuf) > maxScratch || cap(sc.openBuf) > maxScratch {
		t.Fatalf("scratch kept %d/%d bytes", cap(cc.sealBuf), cap(sc.openBuf))
	}
	// And the other way, server to client.
	frame, _ := sc.Seal(nil, FlagMore, []byte("pong"))
	if fl, got, err := cc.Open(frameBody(t, frame)); err != nil || fl != FlagMore || string(got) != "pong" {
		t.Fatalf("server to client: %v %#x %q", err, fl, got)
	}
}

func TestCipherRejects(t *testing.T) {
	cc, sc := cipherPair(t)
	seal := func(body string) []byte {
		f, err := cc.Seal(nil, 0, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return frameBody(t, f)
	}
	m1, m2 := seal("one"), seal("two")
	keep1 := append([]byte(nil), m1...)
	if _, _, err := sc.Open(m2); err != nil { // nonces may skip, as long as they increase
		t.Fatal(err)
	}
	if _, _, err := sc.Open(keep1); !errors.Is(err, ErrNonce) {
		t.Fatalf("older nonce: %v", err)
	}
	m3 := seal("three")
	replay := append([]byte(nil), m3...)
	if _, _, err := sc.Open(m3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sc.Open(replay); !errors.Is(err, ErrNonce) {
		t.Fatalf("replay: %v", err)
	}
	for i := messageHeader; i < len(seal("x")); i++ {
		m := seal("tamper")
		m[i] ^= 1
		if _, _, err := sc.Open(m); !errors.Is(err, ErrCrypto) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	m := seal("nonce")
	m[15]++ // a higher nonce than the box was sealed with
	if _, _, err := sc.Open(m); !errors.Is(err, ErrCrypto) {
		t.Fatalf("nonce changed: %v", err)
	}
	if _, _, err := sc.Open(seal("x")[:messageMin-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	if _, _, err := sc.Open([]byte("\x07MESSAG")); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("truncated name: %v", err)
	}
	if _, _, err := sc.Open(append([]byte("\x04PING"), make([]byte, 40)...)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("PING outside MESSAGE: %v", err)
	}
	// A box made for the other direction does not open (prefix S vs C).
	back, _ := sc.Seal(nil, 0, []byte("reflect"))
	if _, _, err := sc.Open(frameBody(t, back)); err == nil {
		t.Fatal("own message accepted")
	}
	// After all rejections the session still works.
	if _, got, err := sc.Open(seal("still fine")); err != nil || string(got) != "still fine" {
		t.Fatalf("after rejections: %v %q", err, got)
	}
}

func TestCipherNonceSpent(t *testing.T) {
	cc, sc := cipherPair(t)
	cc.sendNonce = math.MaxUint64
	f, err := cc.Seal(nil, 0, []byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := sc.Open(frameBody(t, f)); err != nil || string(got) != "last" {
		t.Fatalf("last nonce: %v", err)
	}
	if out, err := cc.Seal([]byte("x"), 0, []byte("more")); !errors.Is(err, ErrNonce) || string(out) != "x" {
		t.Fatalf("after the last nonce: %v %q", err, out)
	}
	// The receiver has seen 2^64-1: nothing can follow.
	cc.sendSpent, cc.sendNonce = false, 7
	f, _ = cc.Seal(nil, 0, []byte("wrapped"))
	if _, _, err := sc.Open(frameBody(t, f)); !errors.Is(err, ErrNonce) {
		t.Fatalf("after max: %v", err)
	}
}

// TestCipherConcurrentDirections: one sender and one receiver on each
// cipher at once (run under -race).
func TestCipherConcurrentDirections(t *testing.T) {
	cc, sc := cipherPair(t)
	const n = 200
	toServer, toClient := make(chan []byte, n), make(chan []byte, n)
	errc := make(chan error, 4)
	send := func(c *curveCipher, out chan<- []byte) {
		for i := 0; i < n; i++ {
			f, err := c.Seal(nil, 0, []byte{byte(i)})
			if err != nil {
				errc <- err
				return
			}
			out <- f[2:]
		}
		errc <- nil
	}
	recv := func(c *curveCipher, in <-chan []byte) {
		for i := 0; i < n; i++ {
			_, b, err := c.Open(<-in)
			if err == nil && (len(b) != 1 || b[0] != byte(i)) {
				err = errors.New("out of order")
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}
	go send(cc, toServer)
	go send(sc, toClient)
	go recv(sc, toServer)
	go recv(cc, toClient)
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(sizeName(size), func(b *testing.B) {
			cc, _ := cipherPair(b)
			body := make([]byte, size)
			buf := make([]byte, 0, size+cc.Overhead())
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = cc.Seal(buf[:0], 0, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(sizeName(size), func(b *testing.B) {
			cc, sc := cipherPair(b)
			body := make([]byte, size)
			// Seal b.N messages up front would cost memory; instead reseal
			// the same body and reset the receiver's nonce window, so each
			// iteration opens a genuinely new box of the right nonce.
			frames := make([][]byte, 1024)
			for i := range frames {
				f, _ := cc.Seal(nil, 0, body)
				frames[i] = f
			}
			cmd := make([]byte, len(frames[0]))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(frames) {
					i = 0
					sc.recvNonce = 0 // replay the batch: only the nonce check would refuse it
				}
				f := frames[i]
				hdr := 2
				if f[0]&flagLong != 0 {
					hdr = 9
				}
				n := copy(cmd, f[hdr:])
				if _, _, err := sc.Open(cmd[:n]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return string(rune('0'+n/1024)) + "KiB"
	}
	return "64B"
}
