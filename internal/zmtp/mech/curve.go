package mech

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
)

// CURVE (25/ZMTP-CURVE, 26/CurveZMQ):
//
//	C:HELLO    S:WELCOME | (close)
//	C:INITIATE S:READY | S:ERROR
//
// Command sizes below count the bytes after the command name, which is what
// Conn.ReadCommand returns; 26/CurveZMQ counts the whole body including the
// name-size octet and the name.
const (
	keySize = 32

	helloData    = 200 - 6 // HELLO is 200 octets
	welcomeData  = 168 - 8 // WELCOME is 168 octets
	initiateMin  = 257 - 9 // INITIATE is at least 257 octets
	readyMinData = 30 - 6  // READY is at least 30 octets

	cookieSize = 16 + 80 // cookie nonce + Box[C' + s'](K)

	// Offsets in HELLO's data: version(2) padding(72) C'(32) nonce(8) box(80).
	helloClientKey = 2 + 72
	helloNonce     = helloClientKey + keySize
	helloBox       = helloNonce + 8
)

var (
	helloPrefix    = [16]byte{'C', 'u', 'r', 'v', 'e', 'Z', 'M', 'Q', 'H', 'E', 'L', 'L', 'O', '-', '-', '-'}
	initiatePrefix = [16]byte{'C', 'u', 'r', 'v', 'e', 'Z', 'M', 'Q', 'I', 'N', 'I', 'T', 'I', 'A', 'T', 'E'}
	readyPrefix    = [16]byte{'C', 'u', 'r', 'v', 'e', 'Z', 'M', 'Q', 'R', 'E', 'A', 'D', 'Y', '-', '-', '-'}
	msgPrefixC     = [16]byte{'C', 'u', 'r', 'v', 'e', 'Z', 'M', 'Q', 'M', 'E', 'S', 'S', 'A', 'G', 'E', 'C'}
	msgPrefixS     = [16]byte{'C', 'u', 'r', 'v', 'e', 'Z', 'M', 'Q', 'M', 'E', 'S', 'S', 'A', 'G', 'E', 'S'}
)

// shortNonce builds a 24-octet nonce from a 16-octet prefix and a short nonce.
func shortNonce(prefix *[16]byte, n uint64) *[24]byte {
	var nonce [24]byte
	copy(nonce[:16], prefix[:])
	binary.BigEndian.PutUint64(nonce[16:], n)
	return &nonce
}

// longNonce builds a 24-octet nonce from an 8-octet prefix and 16 octets.
func longNonce(prefix string, tail []byte) *[24]byte {
	var nonce [24]byte
	copy(nonce[:8], prefix)
	copy(nonce[8:], tail)
	return &nonce
}

func key32(b []byte, what string) (*[32]byte, error) {
	if len(b) != keySize {
		return nil, fmt.Errorf("%w: CURVE %s of %d bytes (32)", ErrConfig, what, len(b))
	}
	var k [32]byte
	copy(k[:], b)
	return &k, nil
}

// CurveKeypair returns a new long-term CURVE key pair, 32 raw bytes each
// (what zmq_curve_keypair returns before Z85 encoding).
func CurveKeypair() (pub, sec []byte, err error) {
	p, s, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return p[:], s[:], nil
}

// CurvePublic derives the public key of a 32-byte CURVE secret key (X25519
// with the base point, as zmq_curve_public).
func CurvePublic(secret []byte) ([]byte, error) {
	if len(secret) != keySize {
		return nil, fmt.Errorf("%w: CURVE secret key of %d bytes (32)", ErrConfig, len(secret))
	}
	return curve25519.X25519(secret, curve25519.Basepoint)
}

func readRand(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("mech: random source: %w", err)
	}
	return nil
}

func curveClient(c Conn, cfg *Config) (Result, error) {
	// Short nonces: HELLO 1, INITIATE 2, MESSAGE from 3, as libzmq numbers
	// them (its first expected peer nonce is above 1).
	return curveClientNonces(c, cfg, 1, 2)
}

// curveClientNonces is curveClient with chosen HELLO and INITIATE nonces,
// so that tests can make a client that breaks the nonce order.
func curveClientNonces(c Conn, cfg *Config, helloN, initN uint64) (Result, error) {
	pub, err := key32(cfg.PublicKey, "public key")
	if err != nil {
		return Result{}, err
	}
	sec, err := key32(cfg.SecretKey, "secret key")
	if err != nil {
		return Result{}, err
	}
	server, err := key32(cfg.ServerKey, "server key")
	if err != nil {
		return Result{}, err
	}
	rnd := cfg.rand()
	// Transient key pair C', for this connection only (26/CurveZMQ HELLO).
	cnPub, cnSec, err := box.GenerateKey(rnd)
	if err != nil {
		return Result{}, fmt.Errorf("mech: random source: %w", err)
	}
	defer clear(cnSec[:])

	nonce := helloN
	hello := make([]byte, helloData)
	hello[0], hello[1] = 1, 0 // CurveZMQ version 1.0; padding stays zero
	copy(hello[helloClientKey:], cnPub[:])
	binary.BigEndian.PutUint64(hello[helloNonce:], nonce)
	var zeros [64]byte
	box.Seal(hello[helloBox:helloBox], zeros[:], shortNonce(&helloPrefix, nonce), server, cnSec)
	if err := c.WriteCommand("HELLO", hello); err != nil {
		return Result{}, err
	}

	name, data, err := c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "WELCOME" {
		return Result{}, unexpected(name, data, "WELCOME")
	}
	if len(data) != welcomeData {
		return Result{}, fmt.Errorf("%w: WELCOME of %d data bytes (%d)", ErrMalformed, len(data), welcomeData)
	}
	// Box[S' + cookie](S->C')
	welcome, ok := box.Open(nil, data[16:], longNonce("WELCOME-", data[:16]), server, cnSec)
	if !ok || len(welcome) != keySize+cookieSize {
		return Result{}, fmt.Errorf("%w: WELCOME box (wrong server key?)", ErrCrypto)
	}
	var cnServer [32]byte
	copy(cnServer[:], welcome[:keySize])
	cookie := welcome[keySize:]

	var shared [32]byte // precomputed once for INITIATE, READY and every MESSAGE
	box.Precompute(&shared, &cnServer, cnSec)

	// vouch = long nonce + Box[C' + S](C->S')
	var vouchNonce [16]byte
	if err := readRand(rnd, vouchNonce[:]); err != nil {
		return Result{}, err
	}
	vouchPlain := make([]byte, 0, 2*keySize)
	vouchPlain = append(vouchPlain, cnPub[:]...)
	vouchPlain = append(vouchPlain, server[:]...)

	// INITIATE box plaintext: C + vouch nonce + vouch box + metadata.
	plain := make([]byte, 0, keySize+16+80+cfg.Local.Size())
	plain = append(plain, pub[:]...)
	plain = append(plain, vouchNonce[:]...)
	plain = box.Seal(plain, vouchPlain, longNonce("VOUCH---", vouchNonce[:]), &cnServer, sec)
	plain = cfg.Local.Append(plain)

	nonce = initN
	initiate := make([]byte, 0, cookieSize+8+box.Overhead+len(plain))
	initiate = append(initiate, cookie...)
	initiate = binary.BigEndian.AppendUint64(initiate, nonce)
	initiate = box.SealAfterPrecomputation(initiate, plain, shortNonce(&initiatePrefix, nonce), &shared)
	if err := c.WriteCommand("INITIATE", initiate); err != nil {
		return Result{}, err
	}
	nonce++

	name, data, err = c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "READY" {
		return Result{}, unexpected(name, data, "READY")
	}
	if len(data) < readyMinData {
		return Result{}, fmt.Errorf("%w: READY of %d data bytes (at least %d)", ErrMalformed, len(data), readyMinData)
	}
	readyNonce := binary.BigEndian.Uint64(data)
	md, ok := box.OpenAfterPrecomputation(nil, data[8:], shortNonce(&readyPrefix, readyNonce), &shared)
	if !ok {
		return Result{}, fmt.Errorf("%w: READY box", ErrCrypto)
	}
	peer, err := ParseMetadata(md)
	if err != nil {
		return Result{}, fmt.Errorf("READY: %w", err)
	}
	ciph := newCipher(&shared, &msgPrefixC, &msgPrefixS, nonce, readyNonce)
	clear(shared[:])
	return Result{Peer: peer, Cipher: ciph}, nil
}

func curveServer(c Conn, cfg *Config) (Result, error) {
	sec, err := key32(cfg.SecretKey, "secret key")
	if err != nil {
		return Result{}, err
	}
	var pub *[32]byte
	if cfg.PublicKey != nil {
		if pub, err = key32(cfg.PublicKey, "public key"); err != nil {
			return Result{}, err
		}
	} else {
		p, err := CurvePublic(sec[:])
		if err != nil {
			return Result{}, err
		}
		pub = (*[32]byte)(p)
	}
	rnd := cfg.rand()

	name, data, err := c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "HELLO" {
		return Result{}, unexpected(name, data, "HELLO")
	}
	if len(data) != helloData {
		return Result{}, fmt.Errorf("%w: HELLO of %d data bytes (%d)", ErrMalformed, len(data), helloData)
	}
	if data[0] != 1 || data[1] != 0 {
		return Result{}, fmt.Errorf("%w: HELLO version %d.%d (1.0)", ErrMalformed, data[0], data[1])
	}
	// The padding is not checked: libzmq does not either, and the box
	// below authenticates everything that matters.
	var cnClient [32]byte
	copy(cnClient[:], data[helloClientKey:])
	helloN := binary.BigEndian.Uint64(data[helloNonce:])
	sig, ok := box.Open(nil, data[helloBox:], shortNonce(&helloPrefix, helloN), &cnClient, sec)
	var zeros [64]byte
	if !ok || subtle.ConstantTimeCompare(sig, zeros[:]) != 1 {
		return Result{}, fmt.Errorf("%w: HELLO signature box (client has the wrong server key?)", ErrCrypto)
	}

	// Transient key pair S' and a cookie key K that exist for this
	// connection only (26/CurveZMQ: a new cookie per WELCOME; K discarded
	// as soon as INITIATE is valid).
	cnPub, cnSec, err := box.GenerateKey(rnd)
	if err != nil {
		return Result{}, fmt.Errorf("mech: random source: %w", err)
	}
	defer clear(cnSec[:])
	var cookieKey [32]byte
	defer clear(cookieKey[:])
	var nonces [32]byte // cookie nonce, welcome nonce
	if err := readRand(rnd, cookieKey[:]); err != nil {
		return Result{}, err
	}
	if err := readRand(rnd, nonces[:]); err != nil {
		return Result{}, err
	}
	cookiePlain := make([]byte, 0, 2*keySize)
	cookiePlain = append(cookiePlain, cnClient[:]...)
	cookiePlain = append(cookiePlain, cnSec[:]...)
	welcomePlain := make([]byte, 0, keySize+cookieSize)
	welcomePlain = append(welcomePlain, cnPub[:]...)
	welcomePlain = append(welcomePlain, nonces[:16]...)
	welcomePlain = secretbox.Seal(welcomePlain, cookiePlain, longNonce("COOKIE--", nonces[:16]), &cookieKey)
	clear(cookiePlain)
	welcome := make([]byte, 0, welcomeData)
	welcome = append(welcome, nonces[16:]...)
	welcome = box.Seal(welcome, welcomePlain, longNonce("WELCOME-", nonces[16:]), &cnClient, sec)
	clear(welcomePlain)
	if err := c.WriteCommand("WELCOME", welcome); err != nil {
		return Result{}, err
	}

	name, data, err = c.ReadCommand()
	if err != nil {
		return Result{}, err
	}
	if name != "INITIATE" {
		return Result{}, unexpected(name, data, "INITIATE")
	}
	if len(data) < initiateMin {
		return Result{}, fmt.Errorf("%w: INITIATE of %d data bytes (at least %d)", ErrMalformed, len(data), initiateMin)
	}
	// The cookie must be ours and carry this connection's C' and s'.
	cookie, ok := secretbox.Open(nil, data[16:cookieSize], longNonce("COOKIE--", data[:16]), &cookieKey)
	if !ok || len(cookie) != 2*keySize ||
		subtle.ConstantTimeCompare(cookie[:keySize], cnClient[:])&subtle.ConstantTimeCompare(cookie[keySize:], cnSec[:]) != 1 {
		return Result{}, fmt.Errorf("%w: INITIATE cookie", ErrCrypto)
	}
	clear(cookie)
	clear(cookieKey[:])
	initN := binary.BigEndian.Uint64(data[cookieSize:])
	// 26/CurveZMQ: the server SHALL verify that the client's short nonces
	// increase (libzmq only checks this from MESSAGE on).
	if initN <= helloN {
		return Result{}, fmt.Errorf("%w: INITIATE nonce %d after HELLO nonce %d", ErrNonce, initN, helloN)
	}
	var shared [32]byte
	box.Precompute(&shared, &cnClient, cnSec)
	plain, ok := box.OpenAfterPrecomputation(nil, data[cookieSize+8:], shortNonce(&initiatePrefix, initN), &shared)
	if !ok || len(plain) < keySize+16+80 {
		return Result{}, fmt.Errorf("%w: INITIATE box", ErrCrypto)
	}
	var clientKey [32]byte
	copy(clientKey[:], plain[:keySize])
	// vouch: Box[C' + S](C->S'); both keys must match (the S check is the
	// "Codes in Chaos" reason 26/CurveZMQ vouches for S).
	vouch, ok := box.Open(nil, plain[keySize+16:keySize+16+80], longNonce("VOUCH---", plain[keySize:keySize+16]), &clientKey, cnSec)
	if !ok || len(vouch) != 2*keySize ||
		subtle.ConstantTimeCompare(vouch[:keySize], cnClient[:])&subtle.ConstantTimeCompare(vouch[keySize:], pub[:]) != 1 {
		return Result{}, fmt.Errorf("%w: INITIATE vouch", ErrCrypto)
	}
	peer, err := ParseMetadata(plain[keySize+16+80:])
	if err != nil {
		return Result{}, fmt.Errorf("INITIATE: %w", err)
	}
	var res Result
	res.Peer = peer
	if cfg.Auth != nil {
		// libzmq asks ZAP whenever a handler exists, domain or not.
		authMD, userID, err := authenticate(c, cfg, [][]byte{clientKey[:]})
		if err != nil {
			return Result{}, err
		}
		res.Peer = append(authMD, res.Peer...)
		res.UserID = userID
	}

	// READY: short nonce 1 (libzmq's first), Box[metadata](S'->C').
	nonce := uint64(1)
	ready := make([]byte, 0, 8+box.Overhead+cfg.Local.Size())
	ready = binary.BigEndian.AppendUint64(ready, nonce)
	ready = box.SealAfterPrecomputation(ready, cfg.Local.Append(nil), shortNonce(&readyPrefix, nonce), &shared)
	if err := c.WriteCommand("READY", ready); err != nil {
		return Result{}, err
	}
	res.Cipher = newCipher(&shared, &msgPrefixS, &msgPrefixC, nonce+1, initN)
	clear(shared[:])
	return res, nil
}
