package transport

/*
#cgo pkg-config: libzmq
#include <zmq.h>
#include <stdlib.h>
#include <string.h>

static int mdg_has_curve(void) { return zmq_has("curve"); }

// mdg_keypair makes a CURVE key pair with libzmq (libsodium underneath) and
// returns it as raw bytes, wiping the Z85 text of the secret key.
static int mdg_keypair(unsigned char *pub, unsigned char *sec) {
	char zp[41], zs[41];
	int rc = zmq_curve_keypair(zp, zs);
	if (rc == 0) {
		if (!zmq_z85_decode(pub, zp) || !zmq_z85_decode(sec, zs)) rc = -1;
	}
	memset(zs, 0, sizeof zs);
	return rc;
}

static int mdg_public(unsigned char *pub, const unsigned char *sec) {
	char zp[41], zs[41];
	if (!zmq_z85_encode(zs, sec, 32)) return -1;
	int rc = zmq_curve_public(zp, zs);
	memset(zs, 0, sizeof zs);
	if (rc == 0 && !zmq_z85_decode(pub, zp)) rc = -1;
	return rc;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrNoCurve: libzmq was built without CURVE (libsodium).
var ErrNoCurve = errors.New("transport: this libzmq has no CURVE support (built without libsodium)")

// HasCurve reports whether libzmq supports CURVE (zmq_has("curve")).
func HasCurve() bool { return C.mdg_has_curve() != 0 }

// CurveKeypair returns a new long-term CURVE key pair made by libzmq
// (zmq_curve_keypair), as 32 raw bytes each.
func CurveKeypair() (public, secret [32]byte, err error) {
	if !HasCurve() {
		return public, secret, ErrNoCurve
	}
	p := (*C.uchar)(C.malloc(64))
	defer func() {
		C.memset(unsafe.Pointer(p), 0, 64)
		C.free(unsafe.Pointer(p))
	}()
	s := (*C.uchar)(unsafe.Add(unsafe.Pointer(p), 32))
	if rc, e := C.mdg_keypair(p, s); rc != 0 {
		return public, secret, fmt.Errorf("transport: curve keypair: %w", errnoErr(e))
	}
	copy(public[:], unsafe.Slice((*byte)(unsafe.Pointer(p)), 32))
	copy(secret[:], unsafe.Slice((*byte)(unsafe.Pointer(s)), 32))
	return public, secret, nil
}

// CurvePublic derives the public key of a CURVE secret key
// (zmq_curve_public), so that a certificate's two keys can be checked
// against each other.
func CurvePublic(secret [32]byte) ([32]byte, error) {
	var public [32]byte
	if !HasCurve() {
		return public, ErrNoCurve
	}
	p := (*C.uchar)(C.malloc(64))
	defer func() {
		C.memset(unsafe.Pointer(p), 0, 64)
		C.free(unsafe.Pointer(p))
	}()
	s := (*C.uchar)(unsafe.Add(unsafe.Pointer(p), 32))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(s)), 32), secret[:])
	if rc, e := C.mdg_public(p, s); rc != 0 {
		return public, fmt.Errorf("transport: curve public: %w", errnoErr(e))
	}
	copy(public[:], unsafe.Slice((*byte)(unsafe.Pointer(p)), 32))
	return public, nil
}

// Z85Encode encodes b, whose length must be a multiple of 4, in Z85 (32/Z85,
// zmq_z85_encode): a 32-byte key becomes 40 printable characters.
func Z85Encode(b []byte) (string, error) {
	if len(b)%4 != 0 || len(b) == 0 {
		return "", fmt.Errorf("transport: Z85 encodes a multiple of 4 bytes, not %d", len(b))
	}
	out := make([]byte, len(b)*5/4+1)
	in := C.CBytes(b)
	defer func() {
		C.memset(in, 0, C.size_t(len(b)))
		C.free(in)
	}()
	dst := (*C.char)(C.malloc(C.size_t(len(out))))
	defer func() {
		C.memset(unsafe.Pointer(dst), 0, C.size_t(len(out)))
		C.free(unsafe.Pointer(dst))
	}()
	if C.zmq_z85_encode(dst, (*C.uint8_t)(in), C.size_t(len(b))) == nil {
		return "", errors.New("transport: Z85 encode failed")
	}
	return C.GoStringN(dst, C.int(len(out)-1)), nil
}

// Z85Decode decodes Z85 text, whose length must be a multiple of 5. It fails
// on any character outside the Z85 alphabet.
func Z85Decode(s string) ([]byte, error) {
	if len(s)%5 != 0 || len(s) == 0 {
		return nil, fmt.Errorf("transport: Z85 text must be a multiple of 5 characters, not %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		// zmq_z85_decode checks the alphabet only from libzmq 4.2.3 on;
		// check here so that no version accepts garbage.
		if !isZ85(s[i]) {
			return nil, fmt.Errorf("transport: %q is not a Z85 character", s[i])
		}
	}
	cs := C.CString(s)
	defer func() {
		C.memset(unsafe.Pointer(cs), 0, C.size_t(len(s)))
		C.free(unsafe.Pointer(cs))
	}()
	n := len(s) * 4 / 5
	dst := C.malloc(C.size_t(n))
	defer func() {
		C.memset(dst, 0, C.size_t(n))
		C.free(dst)
	}()
	if C.zmq_z85_decode((*C.uint8_t)(dst), cs) == nil {
		return nil, errors.New("transport: invalid Z85 text")
	}
	return C.GoBytes(dst, C.int(n)), nil
}

const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

func isZ85(c byte) bool {
	for i := 0; i < len(z85Alphabet); i++ {
		if z85Alphabet[i] == c {
			return true
		}
	}
	return false
}
