package mech

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Test-only ZMTP framing (23/ZMTP "Framing"): flags octet (0x01 MORE, 0x02
// LONG, 0x04 COMMAND), 1- or 8-octet size, body. Commands are a name-size
// octet, the name and data. The engine proper lives in internal/zmtp.

const (
	flagMore    = 0x01
	flagLong    = 0x02
	flagCommand = 0x04
	maxFrame    = 1 << 24
)

type frameConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newFrameConn(c net.Conn) *frameConn {
	return &frameConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
}

func (f *frameConn) writeFrame(flags byte, body []byte) error {
	if len(body) > 255 {
		f.w.WriteByte(flags | flagLong)
		var sz [8]byte
		binary.BigEndian.PutUint64(sz[:], uint64(len(body)))
		f.w.Write(sz[:])
	} else {
		f.w.WriteByte(flags)
		f.w.WriteByte(byte(len(body)))
	}
	_, err := f.w.Write(body)
	return err
}

func (f *frameConn) flush() error { return f.w.Flush() }

func (f *frameConn) readFrame() (byte, []byte, error) {
	if err := f.flush(); err != nil {
		return 0, nil, err
	}
	flags, err := f.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	var size uint64
	if flags&flagLong != 0 {
		var sz [8]byte
		if _, err := io.ReadFull(f.r, sz[:]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(sz[:])
	} else {
		b, err := f.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		size = uint64(b)
	}
	if size > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes", size)
	}
	body := make([]byte, size)
	_, err = io.ReadFull(f.r, body)
	return flags, body, err
}

// writeMessage sends a multipart message as plain frames.
func (f *frameConn) writeMessage(parts [][]byte) error {
	for i, p := range parts {
		var fl byte
		if i < len(parts)-1 {
			fl = flagMore
		}
		if err := f.writeFrame(fl, p); err != nil {
			return err
		}
	}
	return f.flush()
}

// readMessage reads a multipart message of plain frames.
func (f *frameConn) readMessage() ([][]byte, error) {
	var parts [][]byte
	for {
		fl, body, err := f.readFrame()
		if err != nil {
			return nil, err
		}
		if fl&flagCommand != 0 {
			return nil, fmt.Errorf("command frame %q in message", body[:min(len(body), 16)])
		}
		parts = append(parts, body)
		if fl&flagMore == 0 {
			return parts, nil
		}
	}
}

// writeSealed sends a multipart message through a CURVE cipher.
func (f *frameConn) writeSealed(c Cipher, parts [][]byte) error {
	var buf []byte
	for i, p := range parts {
		var fl byte
		if i < len(parts)-1 {
			fl = FlagMore
		}
		var err error
		if buf, err = c.Seal(buf[:0], fl, p); err != nil {
			return err
		}
		if _, err := f.w.Write(buf); err != nil {
			return err
		}
	}
	return f.flush()
}

// readSealed reads a multipart message of CURVE MESSAGE commands (in
// frames with or without the COMMAND bit, as libzmq decodes them).
func (f *frameConn) readSealed(c Cipher) ([][]byte, error) {
	var parts [][]byte
	for {
		_, body, err := f.readFrame()
		if err != nil {
			return nil, err
		}
		inner, pt, err := c.Open(body)
		if err != nil {
			return nil, err
		}
		if inner&FlagCommand != 0 {
			continue // a ZMTP 3.1 command (PING) inside MESSAGE
		}
		parts = append(parts, append([]byte(nil), pt...))
		if inner&FlagMore == 0 {
			return parts, nil
		}
	}
}

func (f *frameConn) ReadCommand() (string, []byte, error) {
	fl, body, err := f.readFrame()
	if err != nil {
		return "", nil, err
	}
	if fl&flagCommand == 0 {
		return "", nil, errors.New("message frame during handshake")
	}
	return ParseCommand(body)
}

func (f *frameConn) WriteRawCommand(body []byte) error { return f.writeFrame(flagCommand, body) }

func (f *frameConn) WriteCommand(name string, data []byte) error {
	body := make([]byte, 0, 1+len(name)+len(data))
	body = append(body, byte(len(name)))
	body = append(body, name...)
	body = append(body, data...)
	return f.writeFrame(flagCommand, body)
}

// pipePair returns both ends of a net.Pipe as frame conns, closed at cleanup.
func pipePair(t *testing.T) (*frameConn, *frameConn) {
	t.Helper()
	a, b := net.Pipe()
	deadline := time.Now().Add(20 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	t.Cleanup(func() { a.Close(); b.Close() })
	return newFrameConn(a), newFrameConn(b)
}

// detRand is a deterministic random source (SHA-256 in counter mode) for
// reproducible handshakes in fuzzing; never for real keys.
type detRand struct {
	seed [32]byte
	ctr  uint64
	buf  []byte
}

func newDetRand(seed string) *detRand { return &detRand{seed: sha256.Sum256([]byte(seed))} }

func (d *detRand) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(d.buf) == 0 {
			var blk [40]byte
			copy(blk[:], d.seed[:])
			binary.BigEndian.PutUint64(blk[32:], d.ctr)
			d.ctr++
			s := sha256.Sum256(blk[:])
			d.buf = s[:]
		}
		c := copy(p[n:], d.buf)
		d.buf = d.buf[c:]
		n += c
	}
	return len(p), nil
}

// scriptConn replays a fixed list of commands and records what is written.
type scriptConn struct {
	in      []command
	written []command
}

type command struct {
	name string
	data []byte
}

func (s *scriptConn) ReadCommand() (string, []byte, error) {
	if len(s.in) == 0 {
		return "", nil, io.EOF
	}
	c := s.in[0]
	s.in = s.in[1:]
	return c.name, c.data, nil
}

func (s *scriptConn) WriteCommand(name string, data []byte) error {
	s.written = append(s.written, command{name, append([]byte(nil), data...)})
	return nil
}

// hookConn lets a test alter commands in either direction.
type hookConn struct {
	Conn
	onRead  func(name string, data []byte) (string, []byte)
	onWrite func(name string, data []byte) (string, []byte)
}

func (h *hookConn) ReadCommand() (string, []byte, error) {
	name, data, err := h.Conn.ReadCommand()
	if err == nil && h.onRead != nil {
		name, data = h.onRead(name, data)
	}
	return name, data, err
}

func (h *hookConn) WriteCommand(name string, data []byte) error {
	if h.onWrite != nil {
		name, data = h.onWrite(name, data)
	}
	return h.Conn.WriteCommand(name, data)
}
