// Package mdp is the pure wire-protocol layer of Majordomo for Go: typed
// commands of 7/MDP (Majordomo 0.1, headers MDPC01/MDPW01) and 18/MDP
// (Majordomo 0.2, headers MDPC02/MDPW02), and their encoding to and decoding
// from ZeroMQ multipart frames.
//
// The package does no I/O. Frames handed to the decoders are the frames of one
// multipart message as the receiving application sees them on a DEALER or
// ROUTER socket, with any ROUTER identity frame already removed. Decoding
// never panics: every malformed input yields one of the ErrXxx sentinel
// errors below, wrapped in a *DecodeError that also says which rule failed.
package mdp

import "fmt"

// Protocol header frames. 7/MDP section "MDP/Client" and "MDP/Worker"; 18/MDP
// the same sections. They are six ASCII bytes on the wire.
const (
	ClientV1 = "MDPC01" // 7/MDP client sub-protocol.
	WorkerV1 = "MDPW01" // 7/MDP worker sub-protocol.
	ClientV2 = "MDPC02" // 18/MDP client sub-protocol.
	WorkerV2 = "MDPW02" // 18/MDP worker sub-protocol.
)

// Version is a Majordomo protocol version.
type Version uint8

// Protocol versions.
const (
	V1 Version = 1 // 7/MDP, Majordomo 0.1.
	V2 Version = 2 // 18/MDP, Majordomo 0.2.
)

// String returns "MDP/0.1" or "MDP/0.2".
func (v Version) String() string {
	switch v {
	case V1:
		return "MDP/0.1"
	case V2:
		return "MDP/0.2"
	}
	return fmt.Sprintf("MDP/unknown(%d)", uint8(v))
}

// Role tells the two sub-protocols apart.
type Role uint8

// Sub-protocols.
const (
	RoleClient Role = 1 // MDP/Client: client <-> broker.
	RoleWorker Role = 2 // MDP/Worker: worker <-> broker.
)

// String returns "client" or "worker".
func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleWorker:
		return "worker"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Command is a protocol command independent of its wire byte, which differs
// between versions (see WireByte).
type Command uint8

// Commands. Final stands for both the 0.1 REPLY and the 0.2 FINAL: in 0.1 the
// only reply is the final one.
const (
	Ready Command = iota + 1
	Request
	Partial
	Final
	Heartbeat
	Disconnect
)

var commandNames = [...]string{"", "READY", "REQUEST", "PARTIAL", "FINAL", "HEARTBEAT", "DISCONNECT"}

// String returns the command's name as the specs spell it.
func (c Command) String() string {
	if int(c) < len(commandNames) && c != 0 {
		return commandNames[c]
	}
	return fmt.Sprintf("COMMAND(%d)", uint8(c))
}

// Worker command bytes of 7/MDP ("MDP/Worker" section).
const (
	v1WorkerReady      byte = 0x01
	v1WorkerRequest    byte = 0x02
	v1WorkerReply      byte = 0x03
	v1WorkerHeartbeat  byte = 0x04
	v1WorkerDisconnect byte = 0x05
)

// Worker command bytes of 18/MDP ("MDP/Worker" section).
const (
	v2WorkerReady      byte = 0x01
	v2WorkerRequest    byte = 0x02
	v2WorkerPartial    byte = 0x03
	v2WorkerFinal      byte = 0x04
	v2WorkerHeartbeat  byte = 0x05
	v2WorkerDisconnect byte = 0x06
)

// Client command bytes of 18/MDP ("MDP/Client" section). 7/MDP client
// messages carry no command byte.
const (
	v2ClientRequest byte = 0x01
	v2ClientPartial byte = 0x02
	v2ClientFinal   byte = 0x03
)

// WireByte returns the command byte that carries c in the given version and
// sub-protocol, and false where the combination does not exist on the wire
// (for example any 0.1 client command, or a 0.1 PARTIAL).
func WireByte(v Version, r Role, c Command) (byte, bool) {
	switch {
	case v == V1 && r == RoleWorker:
		switch c {
		case Ready:
			return v1WorkerReady, true
		case Request:
			return v1WorkerRequest, true
		case Final:
			return v1WorkerReply, true
		case Heartbeat:
			return v1WorkerHeartbeat, true
		case Disconnect:
			return v1WorkerDisconnect, true
		}
	case v == V2 && r == RoleWorker:
		switch c {
		case Ready:
			return v2WorkerReady, true
		case Request:
			return v2WorkerRequest, true
		case Partial:
			return v2WorkerPartial, true
		case Final:
			return v2WorkerFinal, true
		case Heartbeat:
			return v2WorkerHeartbeat, true
		case Disconnect:
			return v2WorkerDisconnect, true
		}
	case v == V2 && r == RoleClient:
		switch c {
		case Request:
			return v2ClientRequest, true
		case Partial:
			return v2ClientPartial, true
		case Final:
			return v2ClientFinal, true
		}
	}
	return 0, false
}

// commandFromByte is WireByte's inverse.
func commandFromByte(v Version, r Role, b byte) (Command, bool) {
	for c := Ready; c <= Disconnect; c++ {
		if w, ok := WireByte(v, r, c); ok && w == b {
			return c, true
		}
	}
	return 0, false
}

// Message is one decoded MDP command.
//
// Service is set for client messages and for worker READY. Client is the
// client address frame of worker REQUEST, PARTIAL and FINAL. Body holds the
// opaque body frames. Slices alias the decoded frames: nothing is copied.
type Message struct {
	Version Version
	Role    Role
	Command Command
	Service []byte
	Client  []byte
	Body    [][]byte
	// Delimited is true when the message had (or, for encoding, should have)
	// an empty frame before the header. 7/MDP always has it. 18/MDP does not,
	// but the broker accepts it from 0.2 peers that add it anyway and answers
	// them in the same shape.
	Delimited bool
}

// Header returns the header string for the message's version and role.
func (m *Message) Header() string { return Header(m.Version, m.Role) }

// Header returns the protocol header for a version and role, or "" if the
// pair is unknown.
func Header(v Version, r Role) string {
	switch {
	case v == V1 && r == RoleClient:
		return ClientV1
	case v == V1 && r == RoleWorker:
		return WorkerV1
	case v == V2 && r == RoleClient:
		return ClientV2
	case v == V2 && r == RoleWorker:
		return WorkerV2
	}
	return ""
}

// parseHeader identifies a header frame.
func parseHeader(f []byte) (Version, Role, bool) {
	if len(f) != 6 {
		return 0, 0, false
	}
	switch string(f) { // no allocation: the compiler optimises string(f) in a switch
	case ClientV1:
		return V1, RoleClient, true
	case WorkerV1:
		return V1, RoleWorker, true
	case ClientV2:
		return V2, RoleClient, true
	case WorkerV2:
		return V2, RoleWorker, true
	}
	return 0, 0, false
}
