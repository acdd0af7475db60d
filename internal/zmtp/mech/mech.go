// Package mech implements the ZMTP security mechanisms NULL (23/ZMTP, 37/ZMTP),
// PLAIN (24/ZMTP-PLAIN) and CURVE (25/ZMTP-CURVE, 26/CurveZMQ) as a pure
// handshake over whole commands, plus the CURVE MESSAGE cipher used after it.
//
// The ZMTP engine owns the connection: it exchanges the 64-byte greeting,
// parses frames, enforces size limits and the handshake deadline, and then
// calls Handshake with a Conn that carries whole commands. Where the specs
// leave behaviour open, the package follows libzmq 4.3 (the interoperability
// target): error reasons are ZAP status codes, a PLAIN server without an
// authenticator refuses every client, a CURVE server without one accepts any
// client key, and a NULL server authenticates only when it has a ZAP domain.
//
// The package logs nothing and starts no goroutines.
package mech

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Conn carries whole ZMTP commands during a handshake. The engine implements
// it over the connection (frame header parsing, size limits and the
// handshake deadline are the engine's job).
type Conn interface {
	// ReadCommand returns the next frame, which must be a command: name and
	// data (the bytes after the name). A message frame during the handshake is
	// an error the engine reports itself.
	ReadCommand() (name string, data []byte, err error)
	// WriteCommand sends one command frame (flushed before the next
	// ReadCommand). The last command of a server's handshake is written
	// without a ReadCommand after it: the engine flushes it once Handshake
	// returns.
	WriteCommand(name string, data []byte) error
}

// Names, as sent in the greeting's mechanism field.
const (
	Null  = "NULL"
	Plain = "PLAIN"
	Curve = "CURVE"
)

// Metadata property names with the exact spellings 23/ZMTP defines; peers
// match names case-insensitively, but libzmq itself compares them exactly, so
// these are the spellings to send.
const (
	PropSocketType = "Socket-Type"
	PropIdentity   = "Identity"
	// PropUserID is the property libzmq adds for the ZAP user id; a server's
	// Result.Peer carries it after a successful authentication.
	PropUserID = "User-Id"
)

// ZAP status codes (27/ZAP "status-code").
const (
	StatusOK        = 200 // authenticated
	StatusTemporary = 300 // temporary failure: close without ERROR
	StatusDenied    = 400 // authentication failure: ERROR "400"
	StatusInternal  = 500 // internal error: ERROR "500"
)

// Sentinel errors. Every error Handshake and Cipher return wraps one of them.
var (
	// ErrMechanism: Config.Mechanism is not NULL, PLAIN or CURVE.
	ErrMechanism = errors.New("mech: unsupported mechanism")
	// ErrConfig: the Config cannot be used (key sizes, credential lengths, metadata).
	ErrConfig = errors.New("mech: invalid configuration")
	// ErrMalformed: a command or metadata block does not follow its grammar or size.
	ErrMalformed = errors.New("mech: malformed command")
	// ErrUnexpected: a well-formed command that is not valid at this point of the handshake.
	ErrUnexpected = errors.New("mech: unexpected command")
	// ErrCrypto: a CURVE box did not open, or a cookie or vouch did not match.
	ErrCrypto = errors.New("mech: cryptographic check failed")
	// ErrNonce: a CURVE short nonce did not increase, or the nonce space is spent.
	ErrNonce = errors.New("mech: invalid nonce")
	// ErrRefused: this server refused the client (see RefusedError for the status).
	ErrRefused = errors.New("mech: authentication refused")
	// ErrPeerError: the peer sent an ERROR command (see PeerError for the reason).
	ErrPeerError = errors.New("mech: peer sent ERROR")
	// ErrNoAuthenticator: a PLAIN server has no Authenticator. libzmq closes
	// such connections without ERROR (there is no point to PLAIN without ZAP).
	ErrNoAuthenticator = errors.New("mech: PLAIN server without authenticator")
	// ErrAuthenticator: the Authenticator returned a status outside 200/300/400/500
	// (libzmq treats such a ZAP reply as malformed and closes without ERROR).
	ErrAuthenticator = errors.New("mech: invalid authenticator status")
)

// RefusedError is returned by a server's Handshake when its Authenticator
// refused the client. It wraps ErrRefused.
type RefusedError struct {
	Mechanism string
	Status    int    // 300, 400 or 500
	Text      string // AuthResult.Text (not sent: libzmq sends only the status code)
	SentError bool   // an ERROR command was sent (not for 300, 27/ZAP temporary failure)
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("mech: %s client refused with status %d", e.Mechanism, e.Status)
	if e.Text != "" {
		s += " (" + e.Text + ")"
	}
	return s
}

// Unwrap lets errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// PeerError is returned when the peer sent an ERROR command. It wraps ErrPeerError.
// A client SHALL NOT reconnect with the same credentials (23/ZMTP "Error Handling").
type PeerError struct {
	Reason string // as sent; libzmq servers send the ZAP status code ("400")
}

func (e *PeerError) Error() string { return "mech: peer sent ERROR " + strconv.Quote(e.Reason) }

// Unwrap lets errors.Is(err, ErrPeerError) hold.
func (e *PeerError) Unwrap() error { return ErrPeerError }

// Status returns the ZAP status code carried by the reason (300, 400, 500),
// or 0 when the reason is not one (libzmq's handle_error_reason rule).
func (e *PeerError) Status() int {
	r := e.Reason
	if len(r) == 3 && r[1] == '0' && r[2] == '0' && r[0] >= '3' && r[0] <= '5' {
		return int(r[0]-'0') * 100
	}
	return 0
}

// AuthRequest is what 27/ZAP would carry; Authenticator replaces the ZAP
// handler (same semantics, in-process call).
type AuthRequest struct {
	Domain      string   // the server's ZAP domain
	Address     string   // peer IP address as libzmq puts it in ZAP ("127.0.0.1", no port)
	Identity    []byte   // ZAP "identity" frame (the server socket's own routing id, usually empty)
	Mechanism   string   // Null, Plain or Curve
	Credentials [][]byte // PLAIN: username, password; CURVE: client long-term public key (32 bytes); NULL: none
}

// AuthResult is the ZAP reply.
type AuthResult struct {
	Status   int    // 200, 300, 400 or 500
	Text     string // status text, for logs
	UserID   string // becomes Result.UserID and the User-Id property
	Metadata Metadata
}

// Authenticator decides on a client during a server handshake. It is called
// on the handshaking goroutine; it must be safe for concurrent use when the
// engine runs handshakes in parallel.
type Authenticator interface {
	Authenticate(req *AuthRequest) AuthResult
}

// Config describes one side of one connection's handshake.
type Config struct {
	Mechanism string // Null, Plain or Curve (the greeting's mechanism)
	Server    bool   // the greeting's as-server (NULL: the binding side)

	// CURVE long-term keys, 32 raw bytes each. A client needs all three;
	// a server needs SecretKey, and PublicKey if given must match it (it
	// is derived from SecretKey otherwise).
	PublicKey, SecretKey, ServerKey []byte

	Username, Password string // PLAIN client, at most 255 bytes each

	Domain string        // ZAP domain
	Auth   Authenticator // server side; nil: no authentication call (libzmq with no ZAP handler)

	PeerAddress string    // for AuthRequest.Address
	Local       Metadata  // our READY/INITIATE properties: Socket-Type, Identity (engine fills)
	Rand        io.Reader // nil: crypto/rand
}

// Result is what a successful handshake yields.
type Result struct {
	// Peer holds, for servers that called the Authenticator, its metadata
	// and User-Id first (so that Get prefers them, as libzmq lets ZAP
	// properties win over ZMTP ones), then the peer's READY/INITIATE
	// properties (Socket-Type, Identity, ...) in wire order.
	Peer   Metadata
	UserID string // from AuthResult.UserID on a server ("" otherwise)
	Cipher Cipher // nil for NULL and PLAIN
}

// Handshake runs the mechanism after the greeting. NULL servers call Auth
// only when Domain != "" (libzmq 4.3's zap_required rule); PLAIN and CURVE
// servers call Auth when it is not nil. A refusal sends ERROR (with the
// status code as reason, as libzmq does; none for 300) and returns a
// *RefusedError; a received ERROR returns a *PeerError.
func Handshake(c Conn, cfg *Config) (Result, error) {
	if cfg == nil {
		return Result{}, fmt.Errorf("%w: nil config", ErrConfig)
	}
	if err := cfg.Local.Validate(); err != nil {
		return Result{}, fmt.Errorf("%w: local metadata: %v", ErrConfig, err)
	}
	switch cfg.Mechanism {
	case Null:
		if cfg.Server {
			return nullServer(c, cfg)
		}
		return nullClient(c, cfg)
	case Plain:
		if cfg.Server {
			return plainServer(c, cfg)
		}
		return plainClient(c, cfg)
	case Curve:
		if cfg.Server {
			return curveServer(c, cfg)
		}
		return curveClient(c, cfg)
	}
	return Result{}, fmt.Errorf("%w: %q", ErrMechanism, cfg.Mechanism)
}

func (cfg *Config) rand() io.Reader {
	if cfg.Rand != nil {
		return cfg.Rand
	}
	return rand.Reader
}

// authenticate calls the Authenticator and, on refusal, sends ERROR the way
// libzmq's zap_client does: the 3-digit status as reason for 400 and 500,
// nothing for 300 (27/ZAP: temporary failure, the client may retry).
// On success it returns the metadata to put in front of Result.Peer.
func authenticate(c Conn, cfg *Config, creds [][]byte) (Metadata, string, error) {
	id, _ := cfg.Local.Get(PropIdentity)
	res := cfg.Auth.Authenticate(&AuthRequest{
		Domain:      cfg.Domain,
		Address:     cfg.PeerAddress,
		Identity:    id,
		Mechanism:   cfg.Mechanism,
		Credentials: creds,
	})
	switch res.Status {
	case StatusOK:
		md := make(Metadata, 0, len(res.Metadata)+1)
		md = append(md, res.Metadata...)
		md = append(md, Property{Name: PropUserID, Value: []byte(res.UserID)})
		return md, res.UserID, nil
	case StatusTemporary:
		return nil, "", &RefusedError{Mechanism: cfg.Mechanism, Status: res.Status, Text: res.Text}
	case StatusDenied, StatusInternal:
		refused := &RefusedError{Mechanism: cfg.Mechanism, Status: res.Status, Text: res.Text, SentError: true}
		if err := writeError(c, cfg.Mechanism, strconv.Itoa(res.Status)); err != nil {
			refused.SentError = false
			return nil, "", fmt.Errorf("%w (sending ERROR: %v)", refused, err)
		}
		return nil, "", refused
	}
	return nil, "", fmt.Errorf("%w: %d", ErrAuthenticator, res.Status)
}

// writeError sends ERROR: reason length (one octet) and reason (23/ZMTP
// "error-reason = short-size 0*255VCHAR"). For PLAIN it uses libzmq's
// prefix when the Conn can write raw commands (see ParseCommand).
func writeError(c Conn, mechanism, reason string) error {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b := make([]byte, 0, len(libzmqPlainError)+1+len(reason))
	if raw, ok := c.(RawCommandWriter); ok && mechanism == Plain {
		b = append(b, libzmqPlainError...)
		b = append(b, byte(len(reason)))
		b = append(b, reason...)
		return raw.WriteRawCommand(b)
	}
	b = append(b, byte(len(reason)))
	b = append(b, reason...)
	return c.WriteCommand("ERROR", b)
}

// peerError parses a received ERROR command. Like libzmq it requires the
// length octet and that the reason fits; trailing bytes are tolerated.
func peerError(data []byte) error {
	if len(data) < 1 || int(data[0]) > len(data)-1 {
		return fmt.Errorf("%w: ERROR reason of %d bytes", ErrMalformed, len(data))
	}
	return &PeerError{Reason: string(data[1 : 1+int(data[0])])}
}

// unexpected builds the error for a command that is not valid in a state,
// turning a well-formed ERROR into a PeerError.
func unexpected(name string, data []byte, want string) error {
	if name == "ERROR" {
		return peerError(data)
	}
	return fmt.Errorf("%w: %.32q while waiting for %s", ErrUnexpected, name, want)
}
