package mdp

import (
	"errors"
	"fmt"
)

// Decoding errors. Every error returned by DecodeToBroker and DecodeFromBroker
// is a *DecodeError whose Err is one of these, so callers can both test with
// errors.Is and count by cause.
var (
	// ErrEmpty: the message has no frames at all.
	ErrEmpty = errors.New("mdp: empty message")
	// ErrDelimiter: a 7/MDP message lacks the empty frame before its header,
	// or some other non-empty frame stands before a valid header.
	ErrDelimiter = errors.New("mdp: missing empty delimiter frame")
	// ErrHeader: the header frame is missing or is not one of MDPC01,
	// MDPW01, MDPC02, MDPW02.
	ErrHeader = errors.New("mdp: missing or unknown protocol header")
	// ErrCommand: the command byte is missing, is not one byte long, is
	// unknown, or names a command that does not travel in this direction.
	ErrCommand = errors.New("mdp: missing or unknown command")
	// ErrShort: a frame the command requires is missing.
	ErrShort = errors.New("mdp: missing frames")
	// ErrExtraFrames: a fixed-size command (READY, HEARTBEAT, DISCONNECT)
	// carries more frames than its definition.
	ErrExtraFrames = errors.New("mdp: unexpected extra frames")
	// ErrService: the service name is empty.
	ErrService = errors.New("mdp: empty service name")
	// ErrEnvelope: a worker REQUEST, REPLY, PARTIAL or FINAL does not hold
	// exactly one non-empty client address frame followed by an empty frame
	// (7/MDP and 18/MDP, "Request and Reply Processing").
	ErrEnvelope = errors.New("mdp: bad client envelope")
)

// DecodeError describes why a message failed to decode.
type DecodeError struct {
	Err    error  // One of the ErrXxx sentinels.
	Detail string // Human-readable context, for logs.
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

func fail(err error, format string, a ...any) error {
	return &DecodeError{Err: err, Detail: fmt.Sprintf(format, a...)}
}

// Direction says which way a message travels, because 7/MDP client requests
// and replies have the same shape and can only be told apart by direction.
type Direction uint8

// Directions.
const (
	ToBroker   Direction = 1 // Sent by a client or worker, received by the broker.
	FromBroker Direction = 2 // Sent by the broker, received by a client or worker.
)

// DecodeToBroker decodes a message as the broker receives it from a client or
// worker, after the ROUTER identity frame has been removed.
func DecodeToBroker(frames [][]byte) (Message, error) {
	return Decode(ToBroker, frames)
}

// DecodeFromBroker decodes a message as a client or worker receives it from
// the broker on a DEALER socket (or, for 0.1 clients, on a REQ socket, which
// has already removed the empty delimiter).
func DecodeFromBroker(frames [][]byte) (Message, error) {
	return Decode(FromBroker, frames)
}

// Decode decodes one multipart message travelling in direction dir.
// The returned Message aliases frames.
func Decode(dir Direction, frames [][]byte) (Message, error) {
	var m Message
	if len(frames) == 0 {
		return m, &DecodeError{Err: ErrEmpty}
	}
	f := frames
	if len(f[0]) == 0 {
		m.Delimited = true
		f = f[1:]
		if len(f) == 0 {
			return m, fail(ErrHeader, "only an empty frame")
		}
	}
	v, r, ok := parseHeader(f[0])
	if !ok {
		if !m.Delimited && len(f) > 1 && len(f[1]) == 6 {
			if _, _, ok := parseHeader(f[1]); ok {
				return m, fail(ErrDelimiter, "non-empty frame before header")
			}
		}
		return m, fail(ErrHeader, "got %d-byte frame", len(f[0]))
	}
	m.Version, m.Role = v, r
	f = f[1:]
	if v == V1 && !m.Delimited {
		// A REQ socket strips the delimiter before the application sees
		// the reply; every other 0.1 message must carry it (7/MDP: "MD/Worker
		// commands all start with an empty frame"; DEALER clients "MUST create
		// the empty frame 0 explicitly").
		if !(dir == FromBroker && r == RoleClient) {
			return m, fail(ErrDelimiter, "%s without empty frame 0", m.Header())
		}
	}
	if v == V1 && r == RoleClient {
		// 7/MDP client messages have no command byte.
		if dir == ToBroker {
			m.Command = Request
		} else {
			m.Command = Final
		}
		return m, decodeServiceBody(&m, f)
	}
	if len(f) == 0 {
		return m, fail(ErrCommand, "no command frame")
	}
	if len(f[0]) != 1 {
		return m, fail(ErrCommand, "command frame of %d bytes", len(f[0]))
	}
	c, ok := commandFromByte(v, r, f[0][0])
	if !ok {
		return m, fail(ErrCommand, "unknown %s command byte 0x%02x", m.Header(), f[0][0])
	}
	m.Command = c
	if !allowed(dir, r, c) {
		return m, fail(ErrCommand, "%s %s does not travel %s", m.Header(), c, dirName(dir))
	}
	f = f[1:]
	if r == RoleClient {
		return m, decodeServiceBody(&m, f)
	}
	switch c {
	case Ready:
		if len(f) == 0 {
			return m, fail(ErrShort, "READY without service name")
		}
		if len(f) > 1 {
			return m, fail(ErrExtraFrames, "READY with %d frames after the command", len(f))
		}
		if len(f[0]) == 0 {
			return m, &DecodeError{Err: ErrService}
		}
		m.Service = f[0]
	case Heartbeat, Disconnect:
		if len(f) > 0 {
			return m, fail(ErrExtraFrames, "%s with %d extra frames", c, len(f))
		}
	case Request, Partial, Final:
		if len(f) < 2 || len(f[0]) == 0 || len(f[1]) != 0 {
			return m, fail(ErrEnvelope, "%s needs client address and empty frame", c)
		}
		m.Client = f[0]
		m.Body = f[2:]
		if len(m.Body) == 0 {
			return m, fail(ErrShort, "%s without body", c)
		}
	}
	return m, nil
}

func dirName(d Direction) string {
	if d == ToBroker {
		return "to the broker"
	}
	return "from the broker"
}

// allowed reports whether a command may travel in a direction.
func allowed(dir Direction, r Role, c Command) bool {
	if r == RoleClient {
		if dir == ToBroker {
			return c == Request
		}
		return c == Partial || c == Final
	}
	switch c {
	case Heartbeat, Disconnect:
		return true
	case Request:
		return dir == FromBroker
	case Ready, Partial, Final:
		return dir == ToBroker
	}
	return false
}

func decodeServiceBody(m *Message, f [][]byte) error {
	if len(f) == 0 {
		return fail(ErrShort, "no service frame")
	}
	if len(f[0]) == 0 {
		return &DecodeError{Err: ErrService}
	}
	m.Service = f[0]
	m.Body = f[1:]
	if len(m.Body) == 0 {
		// 7/MDP and 18/MDP: REQUEST and replies are "4 or more frames".
		return fail(ErrShort, "no body frame")
	}
	return nil
}

// Pre-built frames, shared by every encoded message so that encoding does not
// allocate. They must never be written to.
var (
	emptyFrame  = []byte{}
	headerFrame = map[string][]byte{
		ClientV1: []byte(ClientV1), WorkerV1: []byte(WorkerV1),
		ClientV2: []byte(ClientV2), WorkerV2: []byte(WorkerV2),
	}
	byteFrames = func() (t [256][]byte) {
		for i := range t {
			t[i] = []byte{byte(i)}
		}
		return
	}()
	hdrC1, hdrW1 = headerFrame[ClientV1], headerFrame[WorkerV1]
	hdrC2, hdrW2 = headerFrame[ClientV2], headerFrame[WorkerV2]
)

func headerBytes(v Version, r Role) []byte {
	switch {
	case v == V1 && r == RoleClient:
		return hdrC1
	case v == V1 && r == RoleWorker:
		return hdrW1
	case v == V2 && r == RoleClient:
		return hdrC2
	case v == V2 && r == RoleWorker:
		return hdrW2
	}
	return nil
}

// ErrEncode is returned by Append for a message that cannot be put on the
// wire (unknown version, or a command that does not exist in that version).
var ErrEncode = errors.New("mdp: message cannot be encoded")

// Append appends the wire frames of m to dst and returns the extended slice.
// It copies no frame contents: the result aliases m's slices and shared
// read-only header frames, so callers must not modify returned frames.
// A 7/MDP message always gets its empty frame 0; an 18/MDP message gets one
// only if m.Delimited is set.
func Append(dst [][]byte, m *Message) ([][]byte, error) {
	// Validate everything before appending anything, so that on error dst
	// is returned exactly as it came in.
	hdr := headerBytes(m.Version, m.Role)
	if hdr == nil {
		return dst, ErrEncode
	}
	var cmd []byte // nil for 7/MDP client messages, which have no command frame
	if m.Version == V1 && m.Role == RoleClient {
		if m.Command != Request && m.Command != Final {
			return dst, ErrEncode
		}
	} else {
		b, ok := WireByte(m.Version, m.Role, m.Command)
		if !ok {
			return dst, ErrEncode
		}
		cmd = byteFrames[b]
	}
	if m.Version == V1 || m.Delimited {
		dst = append(dst, emptyFrame)
	}
	dst = append(dst, hdr)
	if cmd != nil {
		dst = append(dst, cmd)
	}
	if m.Role == RoleClient {
		dst = append(dst, m.Service)
		return append(dst, m.Body...), nil
	}
	switch m.Command {
	case Ready:
		dst = append(dst, m.Service)
	case Request, Partial, Final:
		dst = append(dst, m.Client, emptyFrame)
		dst = append(dst, m.Body...)
	}
	return dst, nil
}

// Encode returns the wire frames of m in a new slice.
func Encode(m *Message) ([][]byte, error) {
	return Append(make([][]byte, 0, 6+len(m.Body)), m)
}
