package mech

import (
	"fmt"

	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// libzmq 4.3's PLAIN mechanism spells the ERROR command prefix as the C
// string "\x05ERROR", in which the hex escape swallows the 'E': its PLAIN
// servers send, and its PLAIN clients recognise, a body starting with the
// 5 octets 0x5E "RROR" instead of 0x05 "ERROR" (src/plain_common.hpp, all
// 4.3 releases). NULL and CURVE use the correct form.
const libzmqPlainError = "\x5eRROR"

// ParseCommand splits a command frame body into name and data (23/ZMTP:
// "command-body = command-name command-data", name = short-size 1*255
// name-char). It also accepts libzmq's PLAIN ERROR form (see above) and
// returns it as "ERROR". The engine should use it for handshake commands
// so that a refusal by a libzmq PLAIN server reads as ErrPeerError rather
// than as a malformed frame. data aliases body.
func ParseCommand(body []byte) (name string, data []byte, err error) {
	if len(body) >= len(libzmqPlainError) && string(body[:len(libzmqPlainError)]) == libzmqPlainError &&
		int(body[0]) > len(body)-1 {
		return "ERROR", body[len(libzmqPlainError):], nil
	}
	name, data, err = wire.ParseCommand(body)
	if err != nil {
		return "", nil, fmt.Errorf("%w: command name of %d bytes in a %d-byte body", ErrMalformed, body0(body), len(body))
	}
	return name, data, nil
}

func body0(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return int(b[0])
}

// RawCommandWriter is an optional Conn extension: WriteRawCommand sends
// body as one command frame as is (the engine adds only the frame header).
// A PLAIN server uses it to send ERROR in libzmq's form, the only one
// libzmq 4.3 PLAIN clients recognise; without it, it sends the 23/ZMTP
// form, which such clients report as a protocol error (they close the
// connection either way).
type RawCommandWriter interface {
	WriteRawCommand(body []byte) error
}
