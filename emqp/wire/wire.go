// Package wire is the pure wire-protocol layer of eMQP/1.0, the protocol of
// EventMQ (github.com/eventmq/eventmq): typed commands, their decoding from
// and encoding to ZeroMQ multipart frames, and the parsers for the fields
// with structure of their own (the INFORM queue list, REQUEST headers).
//
// The package does no I/O. Frames handed to Decode are one multipart
// message as a ROUTER or DEALER sees it, with any ROUTER identity frame
// already removed:
//
//	""  "eMQP/1.0"  COMMAND  msgid  arguments...
//
// Where EventMQ's code and the alpha specification disagree, this package
// follows the code (as issue 8 records): KBYE rather than
// KBAI as the goodbye (KBAI is still understood), a worker REPLY carrying
// the result and then the request's msgid, SCHEDULE with five arguments,
// and the administrative commands of emq-cli. Decoding never panics: every
// malformed input yields one of the ErrXxx sentinels, wrapped in a
// *DecodeError that also says which rule failed. Decoded messages alias the
// input frames; nothing is copied.
package wire

import (
	"errors"
	"fmt"
)

// Protocol is the protocol frame of every eMQP/1.0 message.
const Protocol = "eMQP/1.0"

// Peer types announced in INFORM.
const (
	TypeWorker    = "worker"
	TypeScheduler = "scheduler"
)

// EventMQ's defaults (eventmq/conf.py), which peers assume unless told
// otherwise.
const (
	DefaultQueue      = "default" // DEFAULT_QUEUE_NAME: unknown queues go here.
	DefaultWeight     = 10        // DEFAULT_QUEUE_WEIGHT.
	PortBackend       = 47290     // Job managers (workers) connect here.
	PortFrontend      = 47291     // Clients and schedulers connect here.
	PortAdmin         = 47293     // emq-cli connects here.
	PortPublishIn     = 47298     // Publishers connect here.
	PortPublishOut    = 47299     // SUB sockets connect here.
	HeartbeatInterval = 3         // Seconds between heartbeats (HEARTBEAT_INTERVAL).
	HeartbeatTimeout  = 5         // Seconds of silence before a peer is dead (HEARTBEAT_TIMEOUT).
)

// MaxMsgIDLen bounds a message id. EventMQ's are UUID4 strings (36 bytes),
// emq-cli's are prefixed with "admin:".
const MaxMsgIDLen = 255

// Command is an eMQP command.
type Command uint8

// Commands, with their wire names in commandNames.
const (
	Inform         Command = iota + 1 // Worker or scheduler -> router: queues, peer type.
	Ack                               // Router -> peer: the acknowledged msgid.
	Ready                             // Worker -> router: one free job slot.
	Request                           // Client -> router -> worker: queue, headers, payload.
	Reply                             // Both ways; see the package comment.
	Heartbeat                         // Both ways: unix timestamp.
	Schedule                          // Client -> router -> scheduler.
	Unschedule                        // Client -> router -> every scheduler.
	Publish                           // Publisher -> router: topic, [headers,] message.
	Disconnect                        // Router -> peer: go away; admin -> router: shut down.
	Kbye                              // Peer -> router or router -> peer: clean goodbye.
	Kbai                              // The specification's name for KBYE.
	Hello                             // emq-cli on connect; ignored.
	Status                            // emq-cli: router status.
	ShowWorkers                       // emq-cli: ROUTER_SHOW_WORKERS.
	ShowSchedulers                    // emq-cli: ROUTER_SHOW_SCHEDULERS.
	numCommands
)

var commandNames = [numCommands]string{
	"", "INFORM", "ACK", "READY", "REQUEST", "REPLY", "HEARTBEAT", "SCHEDULE",
	"UNSCHEDULE", "PUBLISH", "DISCONNECT", "KBYE", "KBAI", "HELLO", "STATUS",
	"ROUTER_SHOW_WORKERS", "ROUTER_SHOW_SCHEDULERS",
}

// commandBytes are the wire names as frames, so that encoding allocates
// nothing. They must never be written to.
var commandBytes = func() (b [numCommands][]byte) {
	for i, n := range commandNames {
		b[i] = []byte(n)
	}
	return b
}()

var protocolFrame = []byte(Protocol)

// String returns the command's wire name.
func (c Command) String() string {
	if c > 0 && c < numCommands {
		return commandNames[c]
	}
	return fmt.Sprintf("COMMAND(%d)", uint8(c))
}

// Commands lists every command.
func Commands() []Command {
	out := make([]Command, 0, numCommands-1)
	for c := Inform; c < numCommands; c++ {
		out = append(out, c)
	}
	return out
}

// arity is how many argument frames (after the msgid) a command takes.
var arity = [numCommands]struct{ min, max int }{
	Inform:         {2, 2}, // queues, peer type.
	Ack:            {1, 1}, // acknowledged msgid.
	Ready:          {0, 0},
	Request:        {3, 3}, // queue, headers, payload.
	Reply:          {1, 2}, // [result,] msgid; or an admin reply's JSON.
	Heartbeat:      {0, 1}, // unix timestamp.
	Schedule:       {3, 5}, // queue, headers, [interval,] job[, cron].
	Unschedule:     {3, 5},
	Publish:        {2, 3}, // topic, [headers,] message.
	Disconnect:     {0, 1},
	Kbye:           {0, 0},
	Kbai:           {0, 0},
	Hello:          {0, 1},
	Status:         {0, 1}, // Older emq-cli: show_managers / show_schedulers.
	ShowWorkers:    {0, 0},
	ShowSchedulers: {0, 0},
}

// Arity returns the least and the most argument frames c takes.
func Arity(c Command) (min, max int) {
	if c > 0 && c < numCommands {
		return arity[c].min, arity[c].max
	}
	return 0, 0
}

// MaxFrames is the most frames a valid message has (delimiter, protocol,
// command, msgid and five arguments).
const MaxFrames = 9

// Decoding errors. Every error Decode returns is a *DecodeError wrapping
// exactly one of them.
var (
	ErrEmpty       = errors.New("emqp: empty message")
	ErrDelimiter   = errors.New("emqp: frame 0 is not empty")
	ErrProtocol    = errors.New("emqp: not eMQP/1.0")
	ErrCommand     = errors.New("emqp: unknown command")
	ErrMsgID       = errors.New("emqp: missing or oversized message id")
	ErrShort       = errors.New("emqp: too few arguments")
	ErrExtraFrames = errors.New("emqp: too many arguments")
)

// Sentinels lists the decoding errors, for tests and metrics.
func Sentinels() []error {
	return []error{ErrEmpty, ErrDelimiter, ErrProtocol, ErrCommand, ErrMsgID, ErrShort, ErrExtraFrames}
}

// DecodeError is a decoding failure: Err is one of the sentinels, Command
// the command if it was recognised, Detail what exactly was wrong.
type DecodeError struct {
	Err     error
	Command Command
	Detail  string
}

func (e *DecodeError) Error() string {
	if e.Command != 0 {
		return fmt.Sprintf("%v: %s: %s", e.Err, e.Command, e.Detail)
	}
	return fmt.Sprintf("%v: %s", e.Err, e.Detail)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Message is one decoded eMQP command. MsgID and Args alias the decoded
// frames.
type Message struct {
	Command Command
	MsgID   []byte
	Args    [][]byte
}

// Arg returns argument i, or nil if there is no such argument.
func (m *Message) Arg(i int) []byte {
	if i < 0 || i >= len(m.Args) {
		return nil
	}
	return m.Args[i]
}

func lookupCommand(b []byte) Command {
	// Linear, but short and allocation-free: the common commands first.
	for c := Request; c < numCommands; c++ {
		if string(b) == commandNames[c] {
			return c
		}
	}
	for c := Inform; c < Request; c++ {
		if string(b) == commandNames[c] {
			return c
		}
	}
	return 0
}

func fail(err error, c Command, detail string) (Message, error) {
	return Message{}, &DecodeError{Err: err, Command: c, Detail: detail}
}

// Decode decodes one message (without the ROUTER identity frame). It does
// not allocate on success.
func Decode(frames [][]byte) (Message, error) {
	switch {
	case len(frames) == 0:
		return fail(ErrEmpty, 0, "no frames")
	case len(frames[0]) != 0:
		return fail(ErrDelimiter, 0, "frame 0 must be empty")
	case len(frames) < 2:
		return fail(ErrShort, 0, "no protocol frame")
	case string(frames[1]) != Protocol:
		return fail(ErrProtocol, 0, "frame 1 must be "+Protocol)
	case len(frames) < 3:
		return fail(ErrShort, 0, "no command frame")
	}
	c := lookupCommand(frames[2])
	if c == 0 {
		return fail(ErrCommand, 0, "frame 2 is not a known command")
	}
	if len(frames) < 4 {
		return fail(ErrMsgID, c, "no message id")
	}
	id := frames[3]
	if len(id) == 0 || len(id) > MaxMsgIDLen {
		return fail(ErrMsgID, c, "empty or longer than 255 bytes")
	}
	args := frames[4:]
	a := arity[c]
	switch {
	case len(args) < a.min:
		return fail(ErrShort, c, fmt.Sprintf("%d arguments, want at least %d", len(args), a.min))
	case len(args) > a.max:
		return fail(ErrExtraFrames, c, fmt.Sprintf("%d arguments, want at most %d", len(args), a.max))
	}
	return Message{Command: c, MsgID: id, Args: args}, nil
}

// ErrEncode is returned by Append for a message Decode would refuse.
var ErrEncode = errors.New("emqp: cannot encode")

// Append appends the frames of message m to dst: empty delimiter,
// protocol, command, msgid, arguments. The protocol and command frames are
// shared read-only slices, so the caller must not write to them. On error
// dst is returned unchanged.
func Append(dst [][]byte, m *Message) ([][]byte, error) {
	c := m.Command
	if c == 0 || c >= numCommands {
		return dst, fmt.Errorf("%w: unknown command %d", ErrEncode, c)
	}
	if len(m.MsgID) == 0 || len(m.MsgID) > MaxMsgIDLen {
		return dst, fmt.Errorf("%w: message id of %d bytes", ErrEncode, len(m.MsgID))
	}
	if a := arity[c]; len(m.Args) < a.min || len(m.Args) > a.max {
		return dst, fmt.Errorf("%w: %s with %d arguments", ErrEncode, c, len(m.Args))
	}
	dst = append(dst, nil, protocolFrame, commandBytes[c], m.MsgID)
	return append(dst, m.Args...), nil
}

// Encode returns the frames of m in a new slice.
func Encode(m *Message) ([][]byte, error) {
	return Append(make([][]byte, 0, 4+len(m.Args)), m)
}
