package mech

import (
	"encoding/binary"
	"fmt"
	"math"

	"golang.org/x/crypto/nacl/box"
)

// Cipher encrypts and decrypts message frames after a CURVE handshake
// (26/CurveZMQ MESSAGE, libzmq 4.3 format: flags byte inside the box, 0x01
// MORE, 0x02 COMMAND; ZMTP 3.1 commands such as PING travel inside MESSAGE
// too). Not safe for concurrent use by two senders; Seal and Open may run on
// different goroutines (one sender, one receiver).
type Cipher interface {
	// Seal appends to dst one complete ZMTP frame carrying body with the
	// given inner flags (bits other than MORE and COMMAND are dropped):
	// frame flags 0x00 (+0x02 LONG when the frame body exceeds 255 bytes),
	// 1-byte or 8-byte big-endian size, then "\x07MESSAGE" + nonce + box.
	// The frame is a message frame, not a command frame: libzmq 4.3 sends
	// MESSAGE that way (its encoder clears all flags on the encrypted
	// message) and hands frames with the COMMAND bit to its command
	// handler, which drops unknown names, so a 0x04 frame never arrives.
	// Nonces strictly increase; it returns an error only if the nonce
	// space is spent.
	Seal(dst []byte, flags byte, body []byte) ([]byte, error)
	// Open decrypts a MESSAGE command given the whole frame body (starting
	// with "\x07MESSAGE"). After a CURVE handshake every frame the peer
	// sends, whatever its COMMAND bit, must be passed here (libzmq decodes
	// them all). It returns the inner flags (MORE and
	// COMMAND bits) and the plaintext, which aliases commandBody (decrypted
	// in place; commandBody is overwritten on success). It rejects
	// non-increasing nonces, short commands, bad boxes.
	Open(commandBody []byte) (flags byte, body []byte, err error)
	// Overhead is the most bytes Seal adds to a body (frame header + command
	// name + nonce + box overhead + flags).
	Overhead() int
}

// Inner flags carried in the first plaintext byte of a MESSAGE box.
const (
	FlagMore    = 0x01
	FlagCommand = 0x02
	innerFlags  = FlagMore | FlagCommand
)

const (
	messageName = "\x07MESSAGE"
	// messageHeader is the command name and short nonce before the box.
	messageHeader = len(messageName) + 8
	// messageMin is 26/CurveZMQ's "at least 33 octets": header, box
	// overhead and the flags octet.
	messageMin = messageHeader + box.Overhead + 1
	// cipherOverhead: long frame header (flags + 8-byte size) + messageMin.
	cipherOverhead = 1 + 8 + messageMin

	// maxScratch bounds the plaintext/ciphertext scratch a cipher keeps
	// between calls; bigger messages use a buffer that is dropped after the
	// call, so an idle connection never holds more than this per direction.
	maxScratch = 256 << 10
)

// curveCipher holds one connection's precomputed key. The send side
// (sendNonce, sendSpent, sealBuf) and the receive side (recvNonce, openBuf)
// share only the read-only key and prefixes, so one sender and one receiver
// may run concurrently.
type curveCipher struct {
	key                    [32]byte
	sendPrefix, recvPrefix [16]byte

	sendNonce uint64 // next short nonce to send
	sendSpent bool   // math.MaxUint64 was sent: no nonce left
	sealBuf   []byte

	recvNonce uint64 // last short nonce accepted
	openBuf   []byte
}

func newCipher(key *[32]byte, sendPrefix, recvPrefix *[16]byte, next, lastSeen uint64) *curveCipher {
	return &curveCipher{key: *key, sendPrefix: *sendPrefix, recvPrefix: *recvPrefix, sendNonce: next, recvNonce: lastSeen}
}

func (c *curveCipher) Overhead() int { return cipherOverhead }

func scratch(buf *[]byte, n int) []byte {
	if cap(*buf) >= n {
		return (*buf)[:n]
	}
	b := make([]byte, n)
	if n <= maxScratch {
		*buf = b
	}
	return b
}

func (c *curveCipher) Seal(dst []byte, flags byte, body []byte) ([]byte, error) {
	if c.sendSpent {
		// 26/CurveZMQ: no more than 2^64-1 commands per connection.
		return dst, fmt.Errorf("%w: send nonces spent", ErrNonce)
	}
	n := c.sendNonce
	size := uint64(messageMin) + uint64(len(body))
	if size > 255 {
		dst = append(dst, 0x02) // LONG
		dst = binary.BigEndian.AppendUint64(dst, size)
	} else {
		dst = append(dst, 0x00, byte(size))
	}
	dst = append(dst, messageName...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	// nacl/box refuses overlapping input and output, hence the copy of the
	// plaintext (flags + body) into scratch.
	pt := scratch(&c.sealBuf, 1+len(body))
	pt[0] = flags & innerFlags
	copy(pt[1:], body)
	dst = box.SealAfterPrecomputation(dst, pt, shortNonce(&c.sendPrefix, n), &c.key)
	if n == math.MaxUint64 {
		c.sendSpent = true
	} else {
		c.sendNonce = n + 1
	}
	return dst, nil
}

func (c *curveCipher) Open(cb []byte) (byte, []byte, error) {
	if len(cb) < len(messageName) || string(cb[:len(messageName)]) != messageName {
		return 0, nil, fmt.Errorf("%w: command is not MESSAGE", ErrUnexpected)
	}
	if len(cb) < messageMin {
		return 0, nil, fmt.Errorf("%w: MESSAGE of %d bytes (at least %d)", ErrMalformed, len(cb), messageMin)
	}
	n := binary.BigEndian.Uint64(cb[len(messageName):])
	// 26/CurveZMQ: disconnect peers that reuse a short nonce; like libzmq,
	// require each to be above the last (replays and reordering fail).
	if n <= c.recvNonce {
		return 0, nil, fmt.Errorf("%w: MESSAGE nonce %d after %d", ErrNonce, n, c.recvNonce)
	}
	// Decrypt into commandBody itself: nacl/box refuses overlapping input
	// and output, so the ciphertext moves to scratch first.
	ct := scratch(&c.openBuf, len(cb)-messageHeader)
	copy(ct, cb[messageHeader:])
	pt, ok := box.OpenAfterPrecomputation(cb[messageHeader:messageHeader], ct, shortNonce(&c.recvPrefix, n), &c.key)
	if !ok {
		return 0, nil, fmt.Errorf("%w: MESSAGE box", ErrCrypto)
	}
	c.recvNonce = n
	// libzmq keeps only MORE and COMMAND from the flags octet.
	return pt[0] & innerFlags, pt[1:], nil
}
