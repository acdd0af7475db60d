package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// The decoders take bytes straight from the network: whatever they are
// given they must not panic, must report sizes they never read past, and
// what they accept must re-encode to the same octets.

func FuzzFrameHeader(f *testing.F) {
	f.Add([]byte{0x00, 0x00}, uint64(0))
	f.Add([]byte{0x01, 0xFF}, uint64(255))
	f.Add(AppendFrameHeader(nil, FlagMore, 256), uint64(1<<20))
	f.Add(binary.BigEndian.AppendUint64([]byte{FlagLong}, 1<<63), uint64(0))
	f.Add([]byte{0x05, 0x01}, uint64(0))
	f.Add([]byte{0x80, 0x00}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, max uint64) {
		flags, size, hdr, err := ParseFrameHeader(b, max)
		if err != nil {
			if hdr != 0 {
				t.Fatalf("error %v with header length %d", err, hdr)
			}
			if !errors.Is(err, ErrFlags) && !errors.Is(err, ErrMoreOnCmd) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if hdr == 0 {
			if len(b) >= 9 || (len(b) >= 2 && b[0]&FlagLong == 0) {
				t.Fatalf("%x: a whole header reported as incomplete", b)
			}
			return
		}
		if hdr > len(b) || (hdr != 2 && hdr != 9) || (hdr == 9) != (flags&FlagLong != 0) {
			t.Fatalf("%x: header length %d flags %#x", b, hdr, flags)
		}
		if flags&flagReserved != 0 || (flags&FlagCommand != 0 && flags&FlagMore != 0) {
			t.Fatalf("%x: invalid flags %#x accepted", b, flags)
		}
		if (max > 0 && size > max) || size > 1<<63-1 {
			t.Fatalf("%x: size %d over the limit %d", b, size, max)
		}
		// The canonical encoding of what parsed: identical when the peer
		// used the form we would have used.
		if (size <= 255) == (hdr == 2) {
			if enc := AppendFrameHeader(nil, flags, int(size)); !bytes.Equal(enc, b[:hdr]) {
				t.Fatalf("re-encoded %x, was %x", enc, b[:hdr])
			}
		}
	})
}

func FuzzGreeting(f *testing.F) {
	f.Add(Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}.Append(nil))
	f.Add(Greeting{Major: 3, Minor: 0, Mechanism: "CURVE", AsServer: true}.Append(nil))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 40))))
	zmtp2 := Greeting{Major: 1, Minor: 5}.Append(nil)
	f.Add(zmtp2)
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := ParseGreeting(b)
		if err != nil {
			if !errors.Is(err, ErrShortFrame) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrMechanism) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !SignatureOK(b) || g.Major < 3 || g.Mechanism == "" || len(g.Mechanism) > 20 {
			t.Fatalf("%x accepted as %+v", b[:GreetingSize], g)
		}
		// Re-encoding keeps everything that means anything.
		g2, err := ParseGreeting(g.Append(nil))
		if err != nil || g2 != g {
			t.Fatalf("round trip %+v -> %+v %v", g, g2, err)
		}
	})
}

func FuzzCommand(f *testing.F) {
	for _, c := range [][]byte{
		AppendCommand(nil, "READY", []byte("\x0bSocket-Type\x00\x00\x00\x06DEALER")),
		AppendPing(nil, Ping{TTL: 30, Context: []byte("ctx")}),
		AppendPong(nil, []byte("ctx")),
		AppendError(nil, "400"),
		AppendCommand(nil, "SUBSCRIBE", []byte("topic")),
		{0, 0},
	} {
		_, _, hdr, _ := ParseFrameHeader(c, 0)
		if hdr == 0 {
			hdr = len(c)
		}
		f.Add(c[hdr:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		name, data, err := ParseCommand(body)
		if err != nil {
			if !errors.Is(err, ErrCommand) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		enc := AppendCommand(nil, name, data)
		_, size, hdr, herr := ParseFrameHeader(enc, 0)
		if herr != nil || !bytes.Equal(enc[hdr:], body) || size != uint64(len(body)) {
			t.Fatalf("re-encoded %q as %q", body, enc)
		}
		if !CommandIs(body, name) {
			t.Fatalf("CommandIs(%q, %q) false", body, name)
		}
		switch name {
		case "PING":
			if p, err := ParsePing(data); err == nil {
				pong := AppendPong(nil, p.Context)
				if _, d, err := ParseCommand(pong[2:]); err != nil || !bytes.Equal(d, p.Context) {
					t.Fatalf("PONG %q for context %q", pong, p.Context)
				}
			}
		case "ERROR":
			if r, err := ParseError(data); err == nil && len(r) != len(data)-1 {
				t.Fatalf("reason %q of %q", r, data)
			}
		}
	})
}
