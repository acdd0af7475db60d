// Package auth is Majordomo for Go's security layer: CURVE certificates in
// czmq's zcert format, the authentication hook (27/ZAP semantics) that admits CURVE keys from an allow-list directory, PLAIN users from a
// password file and filters peers by IP address, and the per-service
// authorization policy the broker applies to every READY and REQUEST.
//
// The transport engine does the cryptography (25/ZMTP-CURVE, 26/CurveZMQ);
// this package reads and writes keys, answers authentication requests and
// decides.
package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// Key is a CURVE key: 32 raw bytes. Its text form is 40 characters of Z85.
type Key [32]byte

// ErrKey is wrapped by every error about a malformed key.
var ErrKey = errors.New("auth: malformed CURVE key")

// ParseKey decodes a key in Z85 (40 characters).
func ParseKey(z85 string) (Key, error) {
	var k Key
	if len(z85) != 40 {
		return k, fmt.Errorf("%w: want 40 Z85 characters, got %d", ErrKey, len(z85))
	}
	b, err := z85Decode(z85)
	if err != nil {
		return k, fmt.Errorf("%w: %v", ErrKey, err)
	}
	copy(k[:], b)
	return k, nil
}

// String returns the key in Z85, as certificates, ZAP User-Ids, policy files
// and logs show it.
func (k Key) String() string {
	s, err := z85Encode(k[:])
	if err != nil {
		panic(err) // 32 bytes always encode.
	}
	return s
}

// IsZero reports whether the key is all zeroes (czmq's "no key").
func (k Key) IsZero() bool { return k == Key{} }

// LoadPublicKey reads a public key given either as 40 characters of Z85 or
// as the path of a certificate file (public or secret: its public-key is
// used). It is how --curve-server-key is read.
func LoadPublicKey(keyOrPath string) (Key, error) {
	if len(keyOrPath) == 40 {
		if k, err := ParseKey(keyOrPath); err == nil {
			if _, err := os.Stat(keyOrPath); err != nil {
				return k, nil
			}
		}
	}
	c, err := LoadCert(keyOrPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Key{}, fmt.Errorf("auth: %q is neither a 40-character Z85 key nor a certificate file", keyOrPath)
	}
	if err != nil {
		return Key{}, err
	}
	return c.Public, nil
}

// NewKeypair returns a new Curve25519 key pair from crypto/rand, as
// zmq_curve_keypair makes one.
func NewKeypair() (public, secret Key, err error) {
	p, s, err := transport.CurveKeypair()
	if err != nil {
		return public, secret, fmt.Errorf("auth: %w", err)
	}
	return Key(p), Key(s), nil
}
