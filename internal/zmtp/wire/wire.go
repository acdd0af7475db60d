// Package wire is the ZMTP 3.0/3.1 codec: the greeting, frame headers and
// the commands the engine itself handles (READY's metadata is the security
// mechanisms' business, in package mech). It does no I/O and never panics on
// any input: every size is checked against the bytes at hand before use.
//
// Specs: 23/ZMTP (3.0) and 37/ZMTP (3.1) in ../shared/specs.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// GreetingSize is the fixed size of a ZMTP 3 greeting (23/ZMTP "The
// greeting": signature 10, version 2, mechanism 20, as-server 1, filler 31).
const GreetingSize = 64

// Frame flag bits (23/ZMTP "Framing").
const (
	FlagMore    byte = 0x01
	FlagLong    byte = 0x02
	FlagCommand byte = 0x04
	// flagReserved are bits 7-3: "reserved for future use and MUST be zero".
	flagReserved byte = 0xF8
)

// Errors. A decoding error means the peer is broken or hostile: the engine
// closes the connection (23/ZMTP "Error Handling": signal errors by closing).
var (
	ErrSignature  = errors.New("zmtp: bad greeting signature")
	ErrVersion    = errors.New("zmtp: peer speaks a ZMTP version before 3.0")
	ErrMechanism  = errors.New("zmtp: bad mechanism name in greeting")
	ErrFlags      = errors.New("zmtp: reserved frame flag bits set")
	ErrTooLarge   = errors.New("zmtp: frame larger than the limit")
	ErrCommand    = errors.New("zmtp: malformed command")
	ErrMoreOnCmd  = errors.New("zmtp: MORE flag on a command frame")
	ErrShortFrame = errors.New("zmtp: truncated frame")
)

// Greeting is the part of a greeting that means anything. The padding of
// the signature is never validated (37/ZMTP: "A peer SHALL NOT assign any
// significance to the padding field").
type Greeting struct {
	Major, Minor byte
	Mechanism    string
	AsServer     bool
}

// Append encodes g as the full 64-octet greeting.
func (g Greeting) Append(dst []byte) []byte {
	var b [GreetingSize]byte
	b[0] = 0xFF
	b[9] = 0x7F
	b[10] = g.Major
	b[11] = g.Minor
	copy(b[12:32], g.Mechanism)
	if g.AsServer {
		b[32] = 1
	}
	return append(dst, b[:]...)
}

// ParseGreeting decodes a 64-octet greeting. It accepts any version >= 3.0
// (37/ZMTP: "A peer MUST accept higher protocol versions as valid").
func ParseGreeting(b []byte) (Greeting, error) {
	if len(b) < GreetingSize {
		return Greeting{}, ErrShortFrame
	}
	if b[0] != 0xFF || b[9]&1 != 1 {
		return Greeting{}, ErrSignature
	}
	g := Greeting{Major: b[10], Minor: b[11], AsServer: b[32] == 1}
	if g.Major < 3 {
		return g, ErrVersion
	}
	mech := b[12:32]
	n := 0
	for n < len(mech) && mech[n] != 0 {
		c := mech[n]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+') {
			return g, ErrMechanism
		}
		n++
	}
	if n == 0 {
		return g, ErrMechanism
	}
	g.Mechanism = string(mech[:n])
	return g, nil
}

// SignatureOK reports whether the first 10 octets look like a ZMTP 2.0+
// signature (0xFF, padding, then an octet with bit 0 set). The engine reads
// these first so that it can close a non-ZMTP peer early.
func SignatureOK(b []byte) bool {
	return len(b) >= 10 && b[0] == 0xFF && b[9]&1 == 1
}

// ParseFrameHeader decodes the frame header at the start of b. It returns
// the flags, the body size and the header length; hdr == 0 with a nil error
// means b does not yet hold a whole header. A body larger than max (when
// max > 0) is ErrTooLarge, reported before the caller allocates anything.
func ParseFrameHeader(b []byte, max uint64) (flags byte, size uint64, hdr int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, nil
	}
	flags = b[0]
	if flags&flagReserved != 0 {
		return flags, 0, 0, ErrFlags
	}
	if flags&FlagCommand != 0 && flags&FlagMore != 0 {
		return flags, 0, 0, ErrMoreOnCmd
	}
	if flags&FlagLong == 0 {
		size, hdr = uint64(b[1]), 2
	} else {
		if len(b) < 9 {
			return flags, 0, 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[1:9]), 9
		if size > 1<<63-1 {
			return flags, size, 0, ErrTooLarge
		}
	}
	if max > 0 && size > max {
		return flags, size, 0, ErrTooLarge
	}
	return flags, size, hdr, nil
}

// AppendFrameHeader appends a frame header for a body of n octets, short
// when it fits (23/ZMTP: "SHOULD use a short size field" for 0-255 octets).
func AppendFrameHeader(dst []byte, flags byte, n int) []byte {
	if n <= 255 {
		return append(dst, flags&^FlagLong, byte(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, flags|FlagLong), uint64(n))
}

// FrameHeaderSize is the header length AppendFrameHeader writes for n octets.
func FrameHeaderSize(n int) int {
	if n <= 255 {
		return 2
	}
	return 9
}

// AppendCommand appends a whole command frame: header, name and data.
func AppendCommand(dst []byte, name string, data []byte) []byte {
	dst = AppendFrameHeader(dst, FlagCommand, 1+len(name)+len(data))
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	return append(dst, data...)
}

// ParseCommand splits a command frame's body into its name and data
// (23/ZMTP: command-name = short-size 1*255command-name-char).
func ParseCommand(body []byte) (name string, data []byte, err error) {
	if len(body) < 1 {
		return "", nil, ErrCommand
	}
	n := int(body[0])
	if n == 0 || len(body) < 1+n {
		return "", nil, ErrCommand
	}
	for _, c := range body[1 : 1+n] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "", nil, ErrCommand
		}
	}
	return string(body[1 : 1+n]), body[1+n:], nil
}

// CommandIs reports whether a command frame's body carries the named
// command, without allocating.
func CommandIs(body []byte, name string) bool {
	return len(body) >= 1+len(name) && int(body[0]) == len(name) && string(body[1:1+len(name)]) == name
}

// MaxPingContext is the longest PING context (37/ZMTP: "ping-context =
// 0*16OCTET").
const MaxPingContext = 16

// Ping is a 37/ZMTP PING: a TTL in tenths of a second and a context that
// the PONG echoes.
type Ping struct {
	TTL     uint16
	Context []byte
}

// ParsePing decodes a PING command's data.
func ParsePing(data []byte) (Ping, error) {
	if len(data) < 2 || len(data)-2 > MaxPingContext {
		return Ping{}, fmt.Errorf("%w: PING of %d octets", ErrCommand, len(data))
	}
	return Ping{TTL: binary.BigEndian.Uint16(data), Context: data[2:]}, nil
}

// AppendPing appends a PING command frame.
func AppendPing(dst []byte, p Ping) []byte {
	var data [2 + MaxPingContext]byte
	binary.BigEndian.PutUint16(data[:], p.TTL)
	n := copy(data[2:], p.Context)
	return AppendCommand(dst, "PING", data[:2+n])
}

// AppendPong appends the PONG that answers a PING with this context.
func AppendPong(dst []byte, context []byte) []byte {
	if len(context) > MaxPingContext {
		context = context[:MaxPingContext]
	}
	return AppendCommand(dst, "PONG", context)
}

// ParseError decodes an ERROR command's data (23/ZMTP: error-reason =
// short-size 0*255VCHAR) and returns the reason.
func ParseError(data []byte) (string, error) {
	if len(data) < 1 || len(data) != 1+int(data[0]) {
		return "", fmt.Errorf("%w: ERROR", ErrCommand)
	}
	return string(data[1:]), nil
}

// AppendError appends an ERROR command frame; reason is cut at 255 octets.
func AppendError(dst []byte, reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	data := append([]byte{byte(len(reason))}, reason...)
	return AppendCommand(dst, "ERROR", data)
}
