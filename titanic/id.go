package titanic

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// ID identifies one stored request. On the wire it is 32 hexadecimal
// digits, as 9/TSP requires ("The UUID MUST be formatted as 32 hexadecimal
// characters"); String writes lower case and ParseID accepts either case.
//
// IDs are UUID version 7 (RFC 9562): a 48-bit Unix millisecond timestamp,
// then a 12-bit counter that keeps IDs made in the same millisecond in
// order, then 62 random bits. Time order matters for the store: new keys
// are appended at the right edge of the B+tree instead of splitting pages
// all over it, and a scan of pending requests yields them oldest first.
type ID [16]byte

// ErrBadID: a string is not 32 hexadecimal digits.
var ErrBadID = errors.New("titanic: UUID must be 32 hexadecimal digits")

// String returns the 32 lower-case hexadecimal digits of id.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// AppendHex appends the 32 hexadecimal digits of id to dst.
func (id ID) AppendHex(dst []byte) []byte { return hex.AppendEncode(dst, id[:]) }

// Time returns the creation time encoded in id (millisecond precision).
func (id ID) Time() time.Time {
	var b [8]byte
	copy(b[2:], id[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:])))
}

// ParseID parses 32 hexadecimal digits, in upper or lower case.
func ParseID(s []byte) (ID, error) {
	var id ID
	if len(s) != 32 {
		return id, ErrBadID
	}
	if _, err := hex.Decode(id[:], s); err != nil {
		return ID{}, ErrBadID
	}
	return id, nil
}

// idGen makes time-ordered IDs: strictly increasing within a process, even
// if the clock steps back (the last timestamp is then reused and the counter
// carries on; overflow borrows the next millisecond).
type idGen struct {
	mu     sync.Mutex
	lastMs int64
	seq    uint16 // 12 bits used.
	rnd    [8 * 256]byte
	rndOff int
}

func (g *idGen) next(now time.Time) ID {
	g.mu.Lock()
	ms := now.UnixMilli()
	if ms > g.lastMs {
		g.lastMs = ms
		g.seq = 0
	} else {
		g.seq++
		if g.seq >= 1<<12 {
			g.lastMs++
			g.seq = 0
		}
	}
	ms, seq := g.lastMs, g.seq
	if g.rndOff == 0 || g.rndOff >= len(g.rnd) {
		// crypto/rand never fails on Linux (getrandom); one call serves 256 IDs.
		rand.Read(g.rnd[:])
		g.rndOff = 0
	}
	r := binary.BigEndian.Uint64(g.rnd[g.rndOff:])
	g.rndOff += 8
	g.mu.Unlock()

	var id ID
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(ms))
	copy(id[:6], t[2:])
	binary.BigEndian.PutUint16(id[6:], 0x7000|seq)         // Version 7.
	binary.BigEndian.PutUint64(id[8:], r&^(3<<62)|(2<<62)) // Variant 10.
	return id
}
