package mdp_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/majordomo-go/majordomo/mdp"
)

// fr builds a multipart message from strings; "" is an empty frame.
func fr(frames ...string) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = []byte(f)
	}
	return out
}

// bodies is fr for the Body field, kept separate so tables read as intent.
func bodies(frames ...string) [][]byte { return fr(frames...) }

// Command frames as they appear on the wire, spelled out as literals rather
// than taken from WireByte so that the codec is checked against the specs.
const (
	w1Ready, w1Request, w1Reply, w1Heartbeat, w1Disconnect            = "\x01", "\x02", "\x03", "\x04", "\x05"
	w2Ready, w2Request, w2Partial, w2Final, w2Heartbeat, w2Disconnect = "\x01", "\x02", "\x03", "\x04", "\x05", "\x06"
	c2Request, c2Partial, c2Final                                     = "\x01", "\x02", "\x03"
	clientAddr                                                        = "\x00\x6b\x8b\x45\x67" // a ROUTER-generated identity
)

// diffMessage returns "" if a and b are equal field by field, else a
// description of the first difference. Byte slices compare by content
// (bytes.Equal, so nil equals empty): decoded slices alias the input.
func diffMessage(got, want mdp.Message) string {
	switch {
	case got.Version != want.Version:
		return fmt.Sprintf("Version = %v, want %v", got.Version, want.Version)
	case got.Role != want.Role:
		return fmt.Sprintf("Role = %v, want %v", got.Role, want.Role)
	case got.Command != want.Command:
		return fmt.Sprintf("Command = %v, want %v", got.Command, want.Command)
	case !bytes.Equal(got.Service, want.Service):
		return fmt.Sprintf("Service = %q, want %q", got.Service, want.Service)
	case !bytes.Equal(got.Client, want.Client):
		return fmt.Sprintf("Client = %q, want %q", got.Client, want.Client)
	case got.Delimited != want.Delimited:
		return fmt.Sprintf("Delimited = %t, want %t", got.Delimited, want.Delimited)
	}
	if d := diffFrames(got.Body, want.Body); d != "" {
		return "Body: " + d
	}
	return ""
}

func diffFrames(got, want [][]byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d frames %q, want %d frames %q", len(got), got, len(want), want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Sprintf("frame %d = %q, want %q", i, got[i], want[i])
		}
	}
	return ""
}

type validCase struct {
	name   string
	dir    mdp.Direction
	frames [][]byte
	want   mdp.Message
}

// validCases lists every command shape of both versions in every direction
// it may travel. The fuzz seeds are built from the same table.
var validCases = []validCase{
	// 7/MDP "MDP/Client" REQUEST: empty, "MDPC01", service, body...
	{"v1-client-request", mdp.ToBroker, fr("", "MDPC01", "echo", "hello"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte("echo"), Body: bodies("hello"), Delimited: true}},
	// Body frames are opaque: several, and empty ones, are allowed.
	{"v1-client-request-multibody", mdp.ToBroker, fr("", "MDPC01", "echo", "a", "", "\x00\xff"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte("echo"), Body: bodies("a", "", "\x00\xff"), Delimited: true}},
	// 7/MDP REPLY as a DEALER client sees it: the empty frame 0 is there.
	{"v1-client-reply-dealer", mdp.FromBroker, fr("", "MDPC01", "echo", "hello"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Final, Service: []byte("echo"), Body: bodies("hello"), Delimited: true}},
	// 7/MDP REPLY as a REQ client sees it: the socket removed frame 0.
	{"v1-client-reply-req", mdp.FromBroker, fr("MDPC01", "echo", "hello"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Final, Service: []byte("echo"), Body: bodies("hello")}},

	// 7/MDP "MDP/Worker".
	{"v1-worker-ready", mdp.ToBroker, fr("", "MDPW01", w1Ready, "echo"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte("echo"), Delimited: true}},
	{"v1-worker-request", mdp.FromBroker, fr("", "MDPW01", w1Request, clientAddr, "", "hello"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Request, Client: []byte(clientAddr), Body: bodies("hello"), Delimited: true}},
	{"v1-worker-reply", mdp.ToBroker, fr("", "MDPW01", w1Reply, clientAddr, "", "hello", "world"),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Final, Client: []byte(clientAddr), Body: bodies("hello", "world"), Delimited: true}},
	{"v1-worker-heartbeat-to", mdp.ToBroker, fr("", "MDPW01", w1Heartbeat),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Heartbeat, Delimited: true}},
	{"v1-worker-heartbeat-from", mdp.FromBroker, fr("", "MDPW01", w1Heartbeat),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Heartbeat, Delimited: true}},
	{"v1-worker-disconnect-to", mdp.ToBroker, fr("", "MDPW01", w1Disconnect),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Disconnect, Delimited: true}},
	{"v1-worker-disconnect-from", mdp.FromBroker, fr("", "MDPW01", w1Disconnect),
		mdp.Message{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Disconnect, Delimited: true}},

	// 18/MDP "MDP/Client".
	{"v2-client-request", mdp.ToBroker, fr("MDPC02", c2Request, "echo", "hello"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte("echo"), Body: bodies("hello")}},
	{"v2-client-partial", mdp.FromBroker, fr("MDPC02", c2Partial, "echo", "part", "two"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Partial, Service: []byte("echo"), Body: bodies("part", "two")}},
	{"v2-client-final", mdp.FromBroker, fr("MDPC02", c2Final, "echo", ""),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Final, Service: []byte("echo"), Body: bodies("")}},
	// 0.2 peers that add a 0.1-style empty frame anyway are accepted.
	{"v2-client-request-delimited", mdp.ToBroker, fr("", "MDPC02", c2Request, "echo", "hello"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Request, Service: []byte("echo"), Body: bodies("hello"), Delimited: true}},
	{"v2-client-final-delimited", mdp.FromBroker, fr("", "MDPC02", c2Final, "echo", "hello"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Final, Service: []byte("echo"), Body: bodies("hello"), Delimited: true}},

	// 18/MDP "MDP/Worker".
	{"v2-worker-ready", mdp.ToBroker, fr("MDPW02", w2Ready, "echo"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte("echo")}},
	{"v2-worker-request", mdp.FromBroker, fr("MDPW02", w2Request, clientAddr, "", "hello", ""),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Request, Client: []byte(clientAddr), Body: bodies("hello", "")}},
	{"v2-worker-partial", mdp.ToBroker, fr("MDPW02", w2Partial, clientAddr, "", "part"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Partial, Client: []byte(clientAddr), Body: bodies("part")}},
	{"v2-worker-final", mdp.ToBroker, fr("MDPW02", w2Final, clientAddr, "", "done"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Client: []byte(clientAddr), Body: bodies("done")}},
	{"v2-worker-heartbeat-to", mdp.ToBroker, fr("MDPW02", w2Heartbeat),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Heartbeat}},
	{"v2-worker-heartbeat-from", mdp.FromBroker, fr("MDPW02", w2Heartbeat),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Heartbeat}},
	{"v2-worker-disconnect-to", mdp.ToBroker, fr("MDPW02", w2Disconnect),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Disconnect}},
	{"v2-worker-disconnect-from", mdp.FromBroker, fr("MDPW02", w2Disconnect),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Disconnect}},
	{"v2-worker-ready-delimited", mdp.ToBroker, fr("", "MDPW02", w2Ready, "echo"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready, Service: []byte("echo"), Delimited: true}},
	{"v2-worker-final-delimited", mdp.ToBroker, fr("", "MDPW02", w2Final, clientAddr, "", "done"),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Client: []byte(clientAddr), Body: bodies("done"), Delimited: true}},
	{"v2-worker-heartbeat-delimited", mdp.FromBroker, fr("", "MDPW02", w2Heartbeat),
		mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Heartbeat, Delimited: true}},
}

func TestDecodeValid(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mdp.Decode(tc.dir, tc.frames)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := diffMessage(got, tc.want); d != "" {
				t.Fatal(d)
			}
			// The convenience wrappers must agree with Decode.
			wrap := mdp.DecodeToBroker
			if tc.dir == mdp.FromBroker {
				wrap = mdp.DecodeFromBroker
			}
			got2, err := wrap(tc.frames)
			if err != nil {
				t.Fatalf("wrapper: %v", err)
			}
			if d := diffMessage(got2, tc.want); d != "" {
				t.Fatal("wrapper: " + d)
			}
		})
	}
}

// The package promises not to copy: Service, Client and Body alias the input
// frames, which is what lets the broker forward bodies without allocating.
func TestDecodeAliases(t *testing.T) {
	in := fr("MDPW02", w2Final, clientAddr, "", "a", "b")
	m, err := mdp.DecodeToBroker(in)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Client[0] != &in[2][0] || &m.Body[0][0] != &in[4][0] || &m.Body[1][0] != &in[5][0] {
		t.Error("Client/Body do not alias the input frames")
	}
	in = fr("MDPC02", c2Request, "echo", "x")
	m, err = mdp.DecodeToBroker(in)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Service[0] != &in[2][0] {
		t.Error("Service does not alias the input frame")
	}
}

type malformedCase struct {
	name   string
	dir    mdp.Direction
	frames [][]byte
	want   error
}

// malformedCases gives, for each way a message can be wrong, the sentinel
// Decode must report. The fuzz seeds include these too.
var malformedCases = []malformedCase{
	{"empty-nil", mdp.ToBroker, nil, mdp.ErrEmpty},
	{"empty-zero-frames", mdp.FromBroker, [][]byte{}, mdp.ErrEmpty},
	{"only-empty-frame", mdp.ToBroker, fr(""), mdp.ErrHeader},
	{"two-empty-frames", mdp.ToBroker, fr("", ""), mdp.ErrHeader},

	// Header frame: must be exactly one of the four six-byte strings.
	{"header-unknown", mdp.ToBroker, fr("MDPX01", c2Request, "echo", "x"), mdp.ErrHeader},
	{"header-future-version", mdp.ToBroker, fr("MDPC03", c2Request, "echo", "x"), mdp.ErrHeader},
	{"header-lowercase", mdp.ToBroker, fr("", "mdpc01", "echo", "x"), mdp.ErrHeader},
	{"header-short", mdp.ToBroker, fr("", "MDPC0", "echo", "x"), mdp.ErrHeader},
	{"header-long", mdp.ToBroker, fr("MDPW02\x00", w2Heartbeat), mdp.ErrHeader},
	{"header-after-two-empty", mdp.ToBroker, fr("", "", "MDPW02", w2Heartbeat), mdp.ErrHeader},

	// 7/MDP: every message starts with an empty frame, except a reply a REQ
	// client reads (the socket strips it); worker commands always have it.
	{"v1-client-request-no-delimiter", mdp.ToBroker, fr("MDPC01", "echo", "x"), mdp.ErrDelimiter},
	{"v1-worker-ready-no-delimiter", mdp.ToBroker, fr("MDPW01", w1Ready, "echo"), mdp.ErrDelimiter},
	{"v1-worker-request-no-delimiter", mdp.FromBroker, fr("MDPW01", w1Request, clientAddr, "", "x"), mdp.ErrDelimiter},
	{"v1-worker-heartbeat-no-delimiter", mdp.FromBroker, fr("MDPW01", w1Heartbeat), mdp.ErrDelimiter},
	{"v1-nonempty-frame-before-header", mdp.ToBroker, fr("x", "MDPW01", w1Heartbeat), mdp.ErrDelimiter},

	// Command frame: present, one byte, known, and allowed in this direction.
	{"v2-worker-no-command", mdp.ToBroker, fr("MDPW02"), mdp.ErrCommand},
	{"v2-client-no-command", mdp.ToBroker, fr("MDPC02"), mdp.ErrCommand},
	{"v1-worker-no-command", mdp.ToBroker, fr("", "MDPW01"), mdp.ErrCommand},
	{"command-two-bytes", mdp.ToBroker, fr("MDPW02", "\x01\x00", "echo"), mdp.ErrCommand},
	{"client-command-two-bytes", mdp.ToBroker, fr("MDPC02", "\x01\x01", "echo", "x"), mdp.ErrCommand},
	{"command-empty-frame", mdp.ToBroker, fr("MDPW02", "", "echo"), mdp.ErrCommand},
	{"command-ascii-digit", mdp.ToBroker, fr("MDPW02", "1", "echo"), mdp.ErrCommand},
	{"v2-worker-command-zero", mdp.ToBroker, fr("MDPW02", "\x00"), mdp.ErrCommand},
	{"v2-worker-command-unknown", mdp.ToBroker, fr("MDPW02", "\x07"), mdp.ErrCommand},
	{"v2-worker-command-ff", mdp.FromBroker, fr("MDPW02", "\xff"), mdp.ErrCommand},
	// 0x06 is DISCONNECT in 0.2 but nothing in 0.1.
	{"v1-worker-command-unknown", mdp.ToBroker, fr("", "MDPW01", "\x06"), mdp.ErrCommand},
	{"v2-client-command-unknown", mdp.ToBroker, fr("MDPC02", "\x04", "echo", "x"), mdp.ErrCommand},
	{"v2-client-command-zero", mdp.FromBroker, fr("MDPC02", "\x00", "echo", "x"), mdp.ErrCommand},

	// Wrong direction: 18/MDP "MDP/Client" is C: REQUEST, B: PARTIAL/FINAL;
	// "MDP/Worker" is W: READY/PARTIAL/FINAL, B: REQUEST.
	{"client-sends-partial", mdp.ToBroker, fr("MDPC02", c2Partial, "echo", "x"), mdp.ErrCommand},
	{"client-sends-final", mdp.ToBroker, fr("MDPC02", c2Final, "echo", "x"), mdp.ErrCommand},
	{"broker-sends-client-request", mdp.FromBroker, fr("MDPC02", c2Request, "echo", "x"), mdp.ErrCommand},
	{"v2-worker-sends-request", mdp.ToBroker, fr("MDPW02", w2Request, clientAddr, "", "x"), mdp.ErrCommand},
	{"v1-worker-sends-request", mdp.ToBroker, fr("", "MDPW01", w1Request, clientAddr, "", "x"), mdp.ErrCommand},
	{"v2-broker-sends-ready", mdp.FromBroker, fr("MDPW02", w2Ready, "echo"), mdp.ErrCommand},
	{"v1-broker-sends-ready", mdp.FromBroker, fr("", "MDPW01", w1Ready, "echo"), mdp.ErrCommand},
	{"broker-sends-worker-partial", mdp.FromBroker, fr("MDPW02", w2Partial, clientAddr, "", "x"), mdp.ErrCommand},
	{"broker-sends-worker-final", mdp.FromBroker, fr("MDPW02", w2Final, clientAddr, "", "x"), mdp.ErrCommand},
	{"broker-sends-worker-reply", mdp.FromBroker, fr("", "MDPW01", w1Reply, clientAddr, "", "x"), mdp.ErrCommand},

	// READY: exactly one non-empty service frame.
	{"v2-ready-no-service", mdp.ToBroker, fr("MDPW02", w2Ready), mdp.ErrShort},
	{"v1-ready-no-service", mdp.ToBroker, fr("", "MDPW01", w1Ready), mdp.ErrShort},
	{"v2-ready-empty-service", mdp.ToBroker, fr("MDPW02", w2Ready, ""), mdp.ErrService},
	{"v1-ready-empty-service", mdp.ToBroker, fr("", "MDPW01", w1Ready, ""), mdp.ErrService},
	{"v2-ready-extra-frame", mdp.ToBroker, fr("MDPW02", w2Ready, "echo", "x"), mdp.ErrExtraFrames},
	{"v1-ready-extra-empty-frame", mdp.ToBroker, fr("", "MDPW01", w1Ready, "echo", ""), mdp.ErrExtraFrames},

	// HEARTBEAT and DISCONNECT: no frames after the command.
	{"v2-heartbeat-extra", mdp.ToBroker, fr("MDPW02", w2Heartbeat, "x"), mdp.ErrExtraFrames},
	{"v2-heartbeat-extra-empty", mdp.FromBroker, fr("MDPW02", w2Heartbeat, ""), mdp.ErrExtraFrames},
	{"v1-heartbeat-extra", mdp.ToBroker, fr("", "MDPW01", w1Heartbeat, "x"), mdp.ErrExtraFrames},
	{"v2-disconnect-extra", mdp.ToBroker, fr("MDPW02", w2Disconnect, "x", "y"), mdp.ErrExtraFrames},
	{"v1-disconnect-extra", mdp.FromBroker, fr("", "MDPW01", w1Disconnect, ""), mdp.ErrExtraFrames},

	// "Request and Reply Processing": precisely one client address frame,
	// followed by an empty frame, then at least one body frame.
	{"v2-final-no-client", mdp.ToBroker, fr("MDPW02", w2Final), mdp.ErrEnvelope},
	{"v2-partial-no-client", mdp.ToBroker, fr("MDPW02", w2Partial), mdp.ErrEnvelope},
	{"v1-reply-no-client", mdp.ToBroker, fr("", "MDPW01", w1Reply), mdp.ErrEnvelope},
	{"v2-request-no-client", mdp.FromBroker, fr("MDPW02", w2Request), mdp.ErrEnvelope},
	{"v2-final-client-no-delimiter", mdp.ToBroker, fr("MDPW02", w2Final, clientAddr), mdp.ErrEnvelope},
	{"v2-final-empty-client", mdp.ToBroker, fr("MDPW02", w2Final, "", "", "x"), mdp.ErrEnvelope},
	{"v2-partial-empty-client", mdp.ToBroker, fr("MDPW02", w2Partial, "", "", "x"), mdp.ErrEnvelope},
	{"v1-reply-empty-client", mdp.ToBroker, fr("", "MDPW01", w1Reply, "", "", "x"), mdp.ErrEnvelope},
	{"v2-final-nonempty-delimiter", mdp.ToBroker, fr("MDPW02", w2Final, clientAddr, "x", "y"), mdp.ErrEnvelope},
	{"v2-partial-nonempty-delimiter", mdp.ToBroker, fr("MDPW02", w2Partial, clientAddr, "x", "y"), mdp.ErrEnvelope},
	{"v1-reply-nonempty-delimiter", mdp.ToBroker, fr("", "MDPW01", w1Reply, clientAddr, "x", "y"), mdp.ErrEnvelope},
	{"v2-request-nonempty-delimiter", mdp.FromBroker, fr("MDPW02", w2Request, clientAddr, "x", "y"), mdp.ErrEnvelope},
	{"v2-final-two-clients", mdp.ToBroker, fr("MDPW02", w2Final, clientAddr, "other", "", "x"), mdp.ErrEnvelope},
	{"v2-final-no-body", mdp.ToBroker, fr("MDPW02", w2Final, clientAddr, ""), mdp.ErrShort},
	{"v2-partial-no-body", mdp.ToBroker, fr("MDPW02", w2Partial, clientAddr, ""), mdp.ErrShort},
	{"v1-reply-no-body", mdp.ToBroker, fr("", "MDPW01", w1Reply, clientAddr, ""), mdp.ErrShort},
	{"v2-request-no-body", mdp.FromBroker, fr("MDPW02", w2Request, clientAddr, ""), mdp.ErrShort},
	{"v1-request-no-body", mdp.FromBroker, fr("", "MDPW01", w1Request, clientAddr, ""), mdp.ErrShort},

	// Client messages: service name then "Frames 3+" of body ("4 or more
	// frames" in both specs).
	{"v2-client-no-service", mdp.ToBroker, fr("MDPC02", c2Request), mdp.ErrShort},
	{"v2-client-empty-service", mdp.ToBroker, fr("MDPC02", c2Request, "", "x"), mdp.ErrService},
	{"v2-client-no-body", mdp.ToBroker, fr("MDPC02", c2Request, "echo"), mdp.ErrShort},
	{"v2-client-final-no-body", mdp.FromBroker, fr("MDPC02", c2Final, "echo"), mdp.ErrShort},
	{"v1-client-no-service", mdp.ToBroker, fr("", "MDPC01"), mdp.ErrShort},
	{"v1-client-empty-service", mdp.ToBroker, fr("", "MDPC01", "", "x"), mdp.ErrService},
	{"v1-client-no-body", mdp.ToBroker, fr("", "MDPC01", "echo"), mdp.ErrShort},
	{"v1-client-reply-req-no-body", mdp.FromBroker, fr("MDPC01", "echo"), mdp.ErrShort},
}

var sentinels = []error{
	mdp.ErrEmpty, mdp.ErrDelimiter, mdp.ErrHeader, mdp.ErrCommand,
	mdp.ErrShort, mdp.ErrExtraFrames, mdp.ErrService, mdp.ErrEnvelope,
}

func TestDecodeMalformed(t *testing.T) {
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mdp.Decode(tc.dir, tc.frames)
			if err == nil {
				t.Fatalf("Decode(%q) succeeded, want %v", tc.frames, tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%q) = %v, want %v", tc.frames, err, tc.want)
			}
			// Exactly one sentinel: callers count errors by cause.
			for _, s := range sentinels {
				if s != tc.want && errors.Is(err, s) {
					t.Errorf("error %v also matches %v", err, s)
				}
			}
			checkDecodeError(t, err)
		})
	}
}

// checkDecodeError asserts the documented error contract: a *DecodeError
// whose Err is one of the sentinels, with a usable message.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	var de *mdp.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v is not a *DecodeError", err, err)
	}
	found := false
	for _, s := range sentinels {
		if de.Err == s {
			found = true
		}
	}
	if !found {
		t.Fatalf("DecodeError.Err = %v, not a sentinel", de.Err)
	}
	if de.Unwrap() != de.Err {
		t.Errorf("Unwrap() = %v, want %v", de.Unwrap(), de.Err)
	}
	msg := de.Error()
	if msg == "" || !strings.HasPrefix(msg, de.Err.Error()) {
		t.Errorf("Error() = %q, want it to start with %q", msg, de.Err.Error())
	}
	if de.Detail != "" && !strings.Contains(msg, de.Detail) {
		t.Errorf("Error() = %q does not include detail %q", msg, de.Detail)
	}
}

func TestDecodeErrorMethods(t *testing.T) {
	// Without detail the message is the sentinel's.
	e := &mdp.DecodeError{Err: mdp.ErrService}
	if e.Error() != mdp.ErrService.Error() {
		t.Errorf("Error() = %q, want %q", e.Error(), mdp.ErrService.Error())
	}
	// With detail it is appended, so logs say which rule failed.
	e = &mdp.DecodeError{Err: mdp.ErrShort, Detail: "no body frame"}
	if want := mdp.ErrShort.Error() + ": no body frame"; e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if e.Unwrap() != mdp.ErrShort || !errors.Is(e, mdp.ErrShort) || errors.Is(e, mdp.ErrService) {
		t.Error("Unwrap/errors.Is do not reach the sentinel")
	}
	// Wrapped further by a caller, the sentinel is still found.
	wrapped := fmt.Errorf("peer 7: %w", e)
	var de *mdp.DecodeError
	if !errors.As(wrapped, &de) || de != e || !errors.Is(wrapped, mdp.ErrShort) {
		t.Error("wrapped DecodeError lost its identity")
	}
	for _, s := range sentinels {
		if s.Error() == "" {
			t.Errorf("sentinel %#v has an empty message", s)
		}
	}
}

// TestEncodeWire checks that encoding each decoded valid case reproduces the
// exact input frames: decoding loses nothing, and encoding is canonical.
// The one exception is a 7/MDP reply read by a REQ client, which never had
// its frame 0 in the application's view; encoding restores it, as 7/MDP
// requires on the wire.
func TestEncodeWire(t *testing.T) {
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mdp.Encode(&tc.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			want := tc.frames
			if tc.want.Version == mdp.V1 && !tc.want.Delimited {
				want = append(fr(""), want...)
			}
			if d := diffFrames(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// roundTripMessages builds one message for every command of both versions
// and roles that exists on the wire, undelimited and delimited, each with the
// direction it travels in (both, for HEARTBEAT and DISCONNECT).
func roundTripMessages() []validCase {
	var out []validCase
	type shape struct {
		v    mdp.Version
		r    mdp.Role
		c    mdp.Command
		dirs []mdp.Direction
	}
	to := []mdp.Direction{mdp.ToBroker}
	from := []mdp.Direction{mdp.FromBroker}
	both := []mdp.Direction{mdp.ToBroker, mdp.FromBroker}
	shapes := []shape{
		{mdp.V1, mdp.RoleClient, mdp.Request, to},
		{mdp.V1, mdp.RoleClient, mdp.Final, from},
		{mdp.V1, mdp.RoleWorker, mdp.Ready, to},
		{mdp.V1, mdp.RoleWorker, mdp.Request, from},
		{mdp.V1, mdp.RoleWorker, mdp.Final, to},
		{mdp.V1, mdp.RoleWorker, mdp.Heartbeat, both},
		{mdp.V1, mdp.RoleWorker, mdp.Disconnect, both},
		{mdp.V2, mdp.RoleClient, mdp.Request, to},
		{mdp.V2, mdp.RoleClient, mdp.Partial, from},
		{mdp.V2, mdp.RoleClient, mdp.Final, from},
		{mdp.V2, mdp.RoleWorker, mdp.Ready, to},
		{mdp.V2, mdp.RoleWorker, mdp.Request, from},
		{mdp.V2, mdp.RoleWorker, mdp.Partial, to},
		{mdp.V2, mdp.RoleWorker, mdp.Final, to},
		{mdp.V2, mdp.RoleWorker, mdp.Heartbeat, both},
		{mdp.V2, mdp.RoleWorker, mdp.Disconnect, both},
	}
	for _, s := range shapes {
		for _, dir := range s.dirs {
			for _, delim := range []bool{false, true} {
				m := mdp.Message{Version: s.v, Role: s.r, Command: s.c, Delimited: delim}
				switch {
				case s.r == mdp.RoleClient:
					m.Service = []byte("svc.echo")
					m.Body = bodies("one", "", "three")
				case s.c == mdp.Ready:
					m.Service = []byte("svc.echo")
				case s.c == mdp.Request || s.c == mdp.Partial || s.c == mdp.Final:
					m.Client = []byte(clientAddr)
					m.Body = bodies("\x00binary\xff")
				}
				name := fmt.Sprintf("%v-%v-%v-dir%d-delim%t", s.v, s.r, s.c, dir, delim)
				out = append(out, validCase{name: name, dir: dir, want: m})
			}
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	cases := roundTripMessages()
	if len(cases) != 2*20 { // 16 shapes, 4 of them in both directions, x2 delimiting
		t.Fatalf("built %d round-trip cases, want 40", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := mdp.Encode(&tc.want)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			// 7/MDP always carries frame 0 ("MD/Worker commands all start
			// with an empty frame"; DEALER clients "MUST create the empty
			// frame 0"), whatever Delimited says; 18/MDP only on request.
			wantDelim := tc.want.Delimited || tc.want.Version == mdp.V1
			if hasDelim := len(frames[0]) == 0; hasDelim != wantDelim {
				t.Fatalf("frame 0 empty = %t, want %t: %q", hasDelim, wantDelim, frames)
			}
			got, err := mdp.Decode(tc.dir, frames)
			if err != nil {
				t.Fatalf("Decode(Encode) = %v; frames %q", err, frames)
			}
			want := tc.want
			want.Delimited = wantDelim
			if d := diffMessage(got, want); d != "" {
				t.Fatal(d)
			}
		})
	}
}

// Fields that a command does not carry are ignored by Encode rather than
// leaking onto the wire.
func TestEncodeIgnoresUnusedFields(t *testing.T) {
	m := mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Heartbeat,
		Service: []byte("svc"), Client: []byte("c"), Body: bodies("b")}
	got, err := mdp.Encode(&m)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFrames(got, fr("MDPW02", w2Heartbeat)); d != "" {
		t.Error(d)
	}
	m = mdp.Message{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Ready,
		Service: []byte("svc"), Client: []byte("c"), Body: bodies("b")}
	if got, err = mdp.Encode(&m); err != nil {
		t.Fatal(err)
	}
	if d := diffFrames(got, fr("MDPW02", w2Ready, "svc")); d != "" {
		t.Error(d)
	}
}

// impossibleMessages cannot be put on the wire: unknown version or role, or a
// command that does not exist for that version and role.
var impossibleMessages = []mdp.Message{
	{Version: 0, Role: mdp.RoleClient, Command: mdp.Request},
	{Version: 3, Role: mdp.RoleWorker, Command: mdp.Heartbeat},
	{Version: mdp.V1, Role: 0, Command: mdp.Request},
	{Version: mdp.V2, Role: 3, Command: mdp.Final},
	{Version: mdp.V1, Role: mdp.RoleWorker, Command: mdp.Partial},
	{Version: mdp.V1, Role: mdp.RoleWorker, Command: 0},
	{Version: mdp.V1, Role: mdp.RoleWorker, Command: 7},
	{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Partial},
	{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Ready},
	{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Heartbeat},
	{Version: mdp.V1, Role: mdp.RoleClient, Command: mdp.Disconnect},
	{Version: mdp.V1, Role: mdp.RoleClient, Command: 0},
	{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Ready},
	{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Heartbeat},
	{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Disconnect},
	{Version: mdp.V2, Role: mdp.RoleClient, Command: 0},
	{Version: mdp.V2, Role: mdp.RoleWorker, Command: 0},
	{Version: mdp.V2, Role: mdp.RoleWorker, Command: 7},
	{Version: mdp.V2, Role: mdp.RoleWorker, Command: mdp.Final, Delimited: true, Client: []byte("c")},
}

func TestEncodeImpossible(t *testing.T) {
	// The last entry is valid and stands guard that the table is not
	// rejected wholesale for some unrelated reason.
	valid := impossibleMessages[len(impossibleMessages)-1]
	if _, err := mdp.Encode(&valid); err != nil {
		t.Fatalf("Encode(valid guard) = %v", err)
	}
	for _, m := range impossibleMessages[:len(impossibleMessages)-1] {
		for _, delim := range []bool{false, true} {
			m.Delimited = delim
			if _, err := mdp.Encode(&m); !errors.Is(err, mdp.ErrEncode) {
				t.Errorf("Encode(%v %v %v delimited=%t) error = %v, want ErrEncode",
					m.Version, m.Role, m.Command, delim, err)
			}
		}
	}
}

// Append must not leave a half-encoded message behind when it fails: a caller
// that batches several messages into one dst, or logs and carries on, would
// otherwise send stray header frames. On error the returned slice must be dst
// exactly as passed in.
func TestAppendErrorLeavesDstUnchanged(t *testing.T) {
	prefix := fr("routing-id")
	for _, m := range impossibleMessages[:len(impossibleMessages)-1] {
		for _, delim := range []bool{false, true} {
			m.Delimited = delim
			dst := append(make([][]byte, 0, 16), prefix...)
			got, err := mdp.Append(dst, &m)
			if !errors.Is(err, mdp.ErrEncode) {
				t.Fatalf("Append(%v %v %v) error = %v, want ErrEncode", m.Version, m.Role, m.Command, err)
			}
			if d := diffFrames(got, prefix); d != "" {
				t.Errorf("Append(%v %v %v delimited=%t) on error returned %s",
					m.Version, m.Role, m.Command, delim, d)
				break // one report per message is enough
			}
		}
	}
}

// Append is what the broker uses to prepend a ROUTER identity: it must keep
// dst's frames and add the message after them.
func TestAppendKeepsPrefix(t *testing.T) {
	m := mdp.Message{Version: mdp.V2, Role: mdp.RoleClient, Command: mdp.Final,
		Service: []byte("echo"), Body: bodies("x")}
	dst := fr("routing-id")
	got, err := mdp.Append(dst, &m)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFrames(got, fr("routing-id", "MDPC02", c2Final, "echo", "x")); d != "" {
		t.Error(d)
	}
}
