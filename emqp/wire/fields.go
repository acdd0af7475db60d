package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Header names (REQUEST and SCHEDULE headers are a comma-separated list).
const (
	HeaderReplyRequested = "reply-requested"
	HeaderGuarantee      = "guarantee"
	HeaderRetryCount     = "retry-count" // retry-count:N
	HeaderTimeout        = "timeout"     // timeout:N (seconds)
	HeaderNohaste        = "nohaste"
	HeaderRunCount       = "run_count" // run_count:N (SCHEDULE)
)

// Headers are the parsed headers of a REQUEST or SCHEDULE. Unknown headers
// and numbers that do not parse are ignored, as EventMQ's job manager
// ignores what it does not look for.
type Headers struct {
	ReplyRequested bool
	Guarantee      bool
	Nohaste        bool
	RetryCount     int // -1 when absent.
	Timeout        int // Seconds; 0 when absent.
	RunCount       int // -1 when absent (run for ever).
}

// ParseHeaders parses a header frame. It does not allocate.
func ParseHeaders(b []byte) Headers {
	h := Headers{RetryCount: -1, RunCount: -1}
	for len(b) > 0 {
		var tok []byte
		if i := bytes.IndexByte(b, ','); i >= 0 {
			tok, b = b[:i], b[i+1:]
		} else {
			tok, b = b, nil
		}
		tok = bytes.TrimSpace(tok)
		name, val, hasVal := bytes.Cut(tok, []byte{':'})
		switch string(name) {
		case HeaderReplyRequested:
			h.ReplyRequested = true
		case HeaderGuarantee:
			h.Guarantee = true
		case HeaderNohaste:
			h.Nohaste = true
		case HeaderRetryCount:
			if n, ok := headerInt(val, hasVal); ok {
				h.RetryCount = n
			}
		case HeaderTimeout:
			if n, ok := headerInt(val, hasVal); ok {
				h.Timeout = n
			}
		case HeaderRunCount:
			if n, ok := headerInt(val, hasVal); ok {
				h.RunCount = n
			}
		}
	}
	return h
}

func headerInt(b []byte, present bool) (int, bool) {
	if !present || len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// WithHeader returns headers with name added, unless it is there already.
// It allocates a new slice, leaving the input alone (it may alias a
// received frame).
func WithHeader(headers []byte, name string) []byte {
	for rest := headers; len(rest) > 0; {
		var tok []byte
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		} else {
			tok, rest = rest, nil
		}
		if string(bytes.TrimSpace(tok)) == name {
			return headers
		}
	}
	out := make([]byte, 0, len(headers)+1+len(name))
	out = append(out, headers...)
	if len(bytes.TrimSpace(headers)) > 0 {
		out = append(out, ',')
	}
	return append(out, name...)
}

// QueueSpec is one queue a worker serves, with its weight.
type QueueSpec struct {
	Weight int
	Name   string
}

// Bounds of an INFORM queue list.
const (
	MaxInformQueues = 256
	MaxQueueNameLen = 255
	// MaxQueuesLen bounds an INFORM's queue list in bytes before it is
	// parsed: room for MaxInformQueues entries of the longest name written
	// entirely as \u escapes, with a weight. A larger list cannot be valid
	// short of padding, and parsing 64 MiB of it took 0.36 s of the loop.
	MaxQueuesLen = MaxInformQueues * (8*MaxQueueNameLen + 64)
)

// ErrQueues is returned by ParseQueues for a queue list it cannot use.
var ErrQueues = errors.New("emqp: bad INFORM queue list")

// ParseQueues parses the queue list of a worker's INFORM: JSON
// [[weight, "name"], ...] as EventMQ's job manager sends it. It also
// takes ["name", weight] pairs and bare "name" strings (weight
// DefaultWeight). An empty frame means "the router's default queues": it
// returns nil and no error. Weights below 1 count as 1.
func ParseQueues(b []byte) ([]QueueSpec, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	if len(b) > MaxQueuesLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrQueues, len(b), MaxQueuesLen)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: not a JSON array: %v", ErrQueues, err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	if len(raw) > MaxInformQueues {
		return nil, fmt.Errorf("%w: %d queues, at most %d", ErrQueues, len(raw), MaxInformQueues)
	}
	out := make([]QueueSpec, 0, len(raw))
	for i, r := range raw {
		q, err := parseQueue(r)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrQueues, i, err)
		}
		out = append(out, q)
	}
	return out, nil
}

func parseQueue(r json.RawMessage) (QueueSpec, error) {
	var name string
	if json.Unmarshal(r, &name) == nil {
		return checkQueue(QueueSpec{Weight: DefaultWeight, Name: name})
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(r, &pair); err != nil || len(pair) != 2 {
		return QueueSpec{}, errors.New(`want [weight, "name"]`)
	}
	w, werr := weightOf(pair[0])
	if json.Unmarshal(pair[1], &name) == nil && werr == nil {
		return checkQueue(QueueSpec{Weight: w, Name: name})
	}
	w, werr = weightOf(pair[1])
	if json.Unmarshal(pair[0], &name) == nil && werr == nil {
		return checkQueue(QueueSpec{Weight: w, Name: name})
	}
	return QueueSpec{}, errors.New(`want [weight, "name"]`)
}

func weightOf(r json.RawMessage) (int, error) {
	var f float64
	if err := json.Unmarshal(r, &f); err != nil {
		return 0, err
	}
	if math.IsNaN(f) || f < 1 {
		return 1, nil
	}
	if f > 1e6 {
		return 1e6, nil
	}
	return int(f), nil
}

func checkQueue(q QueueSpec) (QueueSpec, error) {
	if q.Name == "" || len(q.Name) > MaxQueueNameLen {
		return q, errors.New("queue name empty or longer than 255 bytes")
	}
	return q, nil
}

// IDGen makes message ids: UUID4-shaped strings, unique for the life of
// the process (a random 122-bit base plus a counter), without a system call
// or an allocation per id.
type IDGen struct {
	hi, lo uint64
	n      uint64
}

// NewIDGen returns a generator with a random base.
func NewIDGen() *IDGen {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand never fails on supported platforms.
	return &IDGen{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

const hexDigits = "0123456789abcdef"

// Append appends the next id (36 bytes) to dst.
func (g *IDGen) Append(dst []byte) []byte {
	g.n++
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], g.hi)
	binary.BigEndian.PutUint64(u[8:], g.lo+g.n)
	u[6] = u[6]&0x0f | 0x40 // Version 4.
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant.
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// Timestamp formats a unix time in seconds as EventMQ's HEARTBEAT carries
// it (Python's str(time.time()): seconds with a fraction).
func Timestamp(dst []byte, unixNano int64) []byte {
	return strconv.AppendFloat(dst, float64(unixNano)/1e9, 'f', 6, 64)
}
