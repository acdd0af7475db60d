package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// The wire constants are fixed by 23/ZMTP; a change to any of them breaks
// every peer, so they are pinned here.
func TestConstantsPinned(t *testing.T) {
	if FlagMore != 0x01 || FlagLong != 0x02 || FlagCommand != 0x04 {
		t.Fatalf("flags MORE %#x LONG %#x COMMAND %#x", FlagMore, FlagLong, FlagCommand)
	}
	if flagReserved != 0xF8 {
		t.Fatalf("reserved bits %#x", flagReserved)
	}
	if GreetingSize != 64 || MaxPingContext != 16 {
		t.Fatalf("greeting %d, ping context %d", GreetingSize, MaxPingContext)
	}
}

// 23/ZMTP "The greeting": signature (0xFF, 8 octets of padding, 0x7F),
// version major and minor, 20 octets of mechanism padded with zeros,
// as-server, 31 octets of filler.
func TestGreetingLayout(t *testing.T) {
	g := Greeting{Major: 3, Minor: 1, Mechanism: "CURVE", AsServer: true}.Append([]byte{0xAA})
	if len(g) != 1+64 || g[0] != 0xAA {
		t.Fatalf("Append wrote %d octets", len(g)-1)
	}
	g = g[1:]
	want := make([]byte, 64)
	want[0], want[9], want[10], want[11] = 0xFF, 0x7F, 3, 1
	copy(want[12:], "CURVE")
	want[32] = 1
	if !bytes.Equal(g, want) {
		t.Fatalf("greeting\n%x\nwant\n%x", g, want)
	}
	got, err := ParseGreeting(g)
	if err != nil || got != (Greeting{3, 1, "CURVE", true}) {
		t.Fatalf("parse: %+v %v", got, err)
	}
	// A client greeting: as-server 0.
	if g := (Greeting{Major: 3, Minor: 0, Mechanism: "NULL"}).Append(nil); g[32] != 0 || g[11] != 0 {
		t.Fatalf("client greeting %x", g)
	}
}

func TestParseGreeting(t *testing.T) {
	ok := Greeting{Major: 3, Minor: 1, Mechanism: "NULL"}.Append(nil)
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), ok...)
		f(b)
		return b
	}
	// Padding and filler carry no meaning (37/ZMTP): garbage there parses.
	junk := mod(func(b []byte) {
		for i := 1; i < 9; i++ {
			b[i] = 0xEE
		}
		b[9] = 0x01
		for i := 33; i < 64; i++ {
			b[i] = byte(i)
		}
	})
	if g, err := ParseGreeting(junk); err != nil || g.Mechanism != "NULL" {
		t.Fatalf("padding rejected: %v", err)
	}
	// Higher versions are accepted (37/ZMTP: "MUST accept higher protocol versions").
	if g, err := ParseGreeting(mod(func(b []byte) { b[10], b[11] = 4, 7 })); err != nil || g.Major != 4 || g.Minor != 7 {
		t.Fatalf("version 4.7: %+v %v", g, err)
	}
	bad := []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", ok[:63], ErrShortFrame},
		{"empty", nil, ErrShortFrame},
		{"first octet", mod(func(b []byte) { b[0] = 0xFE }), ErrSignature},
		{"last signature bit", mod(func(b []byte) { b[9] = 0x7E }), ErrSignature},
		{"ZMTP 2.0", mod(func(b []byte) { b[10] = 1 }), ErrVersion},
		{"ZMTP major 2", mod(func(b []byte) { b[10] = 2 }), ErrVersion},
		{"empty mechanism", mod(func(b []byte) { clear(b[12:32]) }), ErrMechanism},
		{"lower case mechanism", mod(func(b []byte) { copy(b[12:], "null") }), ErrMechanism},
		{"mechanism with a space", mod(func(b []byte) { copy(b[12:], "NU LL") }), ErrMechanism},
	}
	for _, c := range bad {
		if _, err := ParseGreeting(c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	// A 20-octet mechanism name with no terminating zero is whole.
	full := mod(func(b []byte) { copy(b[12:32], "ABCDEFGHIJ0123456789") })
	if g, err := ParseGreeting(full); err != nil || g.Mechanism != "ABCDEFGHIJ0123456789" {
		t.Fatalf("20-octet mechanism: %q %v", g.Mechanism, err)
	}
	if !SignatureOK(ok) || SignatureOK(ok[:9]) || SignatureOK([]byte("GET / HTTP/1.1\r\n")) {
		t.Fatal("SignatureOK")
	}
}

// Bodies of 0-255 octets take a 2-octet short header; 256 and more a
// 9-octet long one with a big-endian 64-bit size (23/ZMTP "Framing").
func TestFrameHeaderBoundary(t *testing.T) {
	cases := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x01, 0}},
		{1, []byte{0x01, 1}},
		{255, []byte{0x01, 255}},
		{256, []byte{0x03, 0, 0, 0, 0, 0, 0, 1, 0}},
		{65536, []byte{0x03, 0, 0, 0, 0, 0, 1, 0, 0}},
		{8 << 20, []byte{0x03, 0, 0, 0, 0, 0, 0x80, 0, 0}},
	}
	for _, c := range cases {
		h := AppendFrameHeader(nil, FlagMore, c.n)
		if !bytes.Equal(h, c.want) {
			t.Errorf("header for %d: %x, want %x", c.n, h, c.want)
		}
		if FrameHeaderSize(c.n) != len(h) {
			t.Errorf("FrameHeaderSize(%d) = %d, wrote %d", c.n, FrameHeaderSize(c.n), len(h))
		}
		flags, size, hdr, err := ParseFrameHeader(h, 0)
		if err != nil || flags != h[0] || size != uint64(c.n) || hdr != len(h) {
			t.Errorf("parse %x: flags %#x size %d hdr %d %v", h, flags, size, hdr, err)
		}
	}
	// A LONG flag passed in for a short body is cleared: the flag must
	// match the header's form.
	if h := AppendFrameHeader(nil, FlagLong|FlagCommand, 3); h[0] != FlagCommand {
		t.Fatalf("short command header %x", h)
	}
	// Peers may send a long header for a small body; it parses.
	if _, size, hdr, err := ParseFrameHeader([]byte{0x02, 0, 0, 0, 0, 0, 0, 0, 5}, 0); err != nil || size != 5 || hdr != 9 {
		t.Fatalf("long header for 5 octets: %d %d %v", size, hdr, err)
	}
}

func TestParseFrameHeaderErrors(t *testing.T) {
	// Incomplete headers ask for more, without error.
	for _, b := range [][]byte{nil, {0}, {0x02}, {0x02, 0, 0, 0, 0, 0, 0, 0}} {
		if _, _, hdr, err := ParseFrameHeader(b, 0); hdr != 0 || err != nil {
			t.Errorf("%x: hdr %d err %v", b, hdr, err)
		}
	}
	for bit := 3; bit < 8; bit++ {
		if _, _, hdr, err := ParseFrameHeader([]byte{1 << bit, 0}, 0); !errors.Is(err, ErrFlags) || hdr != 0 {
			t.Errorf("reserved bit %d: %v", bit, err)
		}
	}
	if _, _, _, err := ParseFrameHeader([]byte{FlagCommand | FlagMore, 5}, 0); !errors.Is(err, ErrMoreOnCmd) {
		t.Errorf("command with MORE: %v", err)
	}
	// The limit applies before anything is allocated, to both forms.
	if _, size, hdr, err := ParseFrameHeader([]byte{0, 200}, 199); !errors.Is(err, ErrTooLarge) || hdr != 0 || size != 200 {
		t.Errorf("short over limit: %d %v", hdr, err)
	}
	if _, _, _, err := ParseFrameHeader([]byte{0, 199}, 199); err != nil {
		t.Errorf("short at limit: %v", err)
	}
	long := binary.BigEndian.AppendUint64([]byte{FlagLong}, 1<<40)
	if _, _, hdr, err := ParseFrameHeader(long, 64<<20); !errors.Is(err, ErrTooLarge) || hdr != 0 {
		t.Errorf("long over limit: %d %v", hdr, err)
	}
	// Sizes with the top bit set are invalid (23/ZMTP: the size is a
	// 63-bit value) even without a limit.
	top := binary.BigEndian.AppendUint64([]byte{FlagLong}, 1<<63)
	if _, _, _, err := ParseFrameHeader(top, 0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size 2^63: %v", err)
	}
}

func TestCommands(t *testing.T) {
	c := AppendCommand(nil, "READY", []byte("meta"))
	if !bytes.Equal(c, []byte("\x04\x0a\x05READYmeta")) {
		t.Fatalf("READY frame %q", c)
	}
	name, data, err := ParseCommand(c[2:])
	if err != nil || name != "READY" || string(data) != "meta" {
		t.Fatalf("parse: %q %q %v", name, data, err)
	}
	if !CommandIs(c[2:], "READY") || CommandIs(c[2:], "READ") || CommandIs(c[2:], "READYX") || CommandIs(nil, "READY") {
		t.Fatal("CommandIs")
	}
	for _, b := range [][]byte{nil, {0}, {5, 'A', 'B'}, {2, 'A', '1'}, {1, 0xFF}} {
		if _, _, err := ParseCommand(b); !errors.Is(err, ErrCommand) {
			t.Errorf("%q: %v", b, err)
		}
	}
	// A long command (body over 255) takes a long header with COMMAND set.
	big := AppendCommand(nil, "X", make([]byte, 300))
	if big[0] != FlagCommand|FlagLong || len(big) != 9+1+1+300 {
		t.Fatalf("long command header %x, %d octets", big[:9], len(big))
	}
}

func TestPingPongError(t *testing.T) {
	ctx := []byte("0123456789abcdef")
	f := AppendPing(nil, Ping{TTL: 0x1234, Context: ctx})
	name, data, err := ParseCommand(f[2:])
	if err != nil || name != "PING" {
		t.Fatalf("PING: %q %v", name, err)
	}
	p, err := ParsePing(data)
	if err != nil || p.TTL != 0x1234 || !bytes.Equal(p.Context, ctx) {
		t.Fatalf("ParsePing: %+v %v", p, err)
	}
	if _, err := ParsePing(append(data, 'x')); !errors.Is(err, ErrCommand) {
		t.Fatalf("17-octet context: %v", err)
	}
	if _, err := ParsePing([]byte{1}); !errors.Is(err, ErrCommand) {
		t.Fatalf("1-octet PING: %v", err)
	}
	pong := AppendPong(nil, append(ctx, "overflow"...))
	if _, data, _ := ParseCommand(pong[2:]); !bytes.Equal(data, ctx) {
		t.Fatalf("PONG context %q", data)
	}
	e := AppendError(nil, string(bytes.Repeat([]byte("r"), 300)))
	_, _, hdr, _ := ParseFrameHeader(e, 0)
	name, data, err = ParseCommand(e[hdr:])
	if err != nil || name != "ERROR" {
		t.Fatalf("ERROR: %q %v", name, err)
	}
	reason, err := ParseError(data)
	if err != nil || len(reason) != 255 {
		t.Fatalf("ERROR reason of %d: %v", len(reason), err)
	}
	if _, err := ParseError([]byte{3, 'a'}); !errors.Is(err, ErrCommand) {
		t.Fatalf("short reason: %v", err)
	}
}
