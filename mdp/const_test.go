package mdp_test

import (
	"testing"

	"github.com/majordomo-go/majordomo/mdp"
)

// The header frames are what peers of other implementations match byte for
// byte, so they are pinned as literals rather than compared with themselves.
//
// 7/MDP "MDP/Client": frame 1 is "MDPC01"; "MDP/Worker": frame 1 is "MDPW01".
// 18/MDP "MDP/Client": frame 0 is "MDPC02"; "MDP/Worker": frame 0 is "MDPW02".
func TestHeaderConstants(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		v         mdp.Version
		r         mdp.Role
	}{
		{mdp.ClientV1, "MDPC01", mdp.V1, mdp.RoleClient},
		{mdp.WorkerV1, "MDPW01", mdp.V1, mdp.RoleWorker},
		{mdp.ClientV2, "MDPC02", mdp.V2, mdp.RoleClient},
		{mdp.WorkerV2, "MDPW02", mdp.V2, mdp.RoleWorker},
	} {
		if tc.got != tc.want {
			t.Errorf("header constant = %q, want %q", tc.got, tc.want)
		}
		// Both specs: "six bytes".
		if len(tc.got) != 6 {
			t.Errorf("header %q is %d bytes, want 6", tc.got, len(tc.got))
		}
		if h := mdp.Header(tc.v, tc.r); h != tc.want {
			t.Errorf("Header(%v, %v) = %q, want %q", tc.v, tc.r, h, tc.want)
		}
		m := mdp.Message{Version: tc.v, Role: tc.r}
		if h := m.Header(); h != tc.want {
			t.Errorf("(%v, %v).Header() = %q, want %q", tc.v, tc.r, h, tc.want)
		}
	}
	for _, tc := range []struct {
		v mdp.Version
		r mdp.Role
	}{
		{0, mdp.RoleClient}, {3, mdp.RoleWorker}, {mdp.V1, 0}, {mdp.V2, 3}, {0, 0},
	} {
		if h := mdp.Header(tc.v, tc.r); h != "" {
			t.Errorf("Header(%d, %d) = %q, want \"\"", tc.v, tc.r, h)
		}
	}
}

// wireKey names one (version, role, command) combination.
type wireKey struct {
	v mdp.Version
	r mdp.Role
	c mdp.Command
}

// wireBytes is the complete table of command bytes. Any combination not
// listed here must not exist on the wire.
var wireBytes = map[wireKey]byte{
	// 7/MDP "MDP/Worker": READY 0x01, REQUEST 0x02, REPLY 0x03,
	// HEARTBEAT 0x04, DISCONNECT 0x05. REPLY is the package's Final.
	// 7/MDP "MDP/Client" has no command frame at all, so no V1 client entry.
	{mdp.V1, mdp.RoleWorker, mdp.Ready}:      0x01,
	{mdp.V1, mdp.RoleWorker, mdp.Request}:    0x02,
	{mdp.V1, mdp.RoleWorker, mdp.Final}:      0x03,
	{mdp.V1, mdp.RoleWorker, mdp.Heartbeat}:  0x04,
	{mdp.V1, mdp.RoleWorker, mdp.Disconnect}: 0x05,

	// 18/MDP "MDP/Worker": READY 0x01, REQUEST 0x02, PARTIAL 0x03,
	// FINAL 0x04, HEARTBEAT 0x05, DISCONNECT 0x06.
	{mdp.V2, mdp.RoleWorker, mdp.Ready}:      0x01,
	{mdp.V2, mdp.RoleWorker, mdp.Request}:    0x02,
	{mdp.V2, mdp.RoleWorker, mdp.Partial}:    0x03,
	{mdp.V2, mdp.RoleWorker, mdp.Final}:      0x04,
	{mdp.V2, mdp.RoleWorker, mdp.Heartbeat}:  0x05,
	{mdp.V2, mdp.RoleWorker, mdp.Disconnect}: 0x06,

	// 18/MDP "MDP/Client": REQUEST 0x01, PARTIAL 0x02, FINAL 0x03.
	{mdp.V2, mdp.RoleClient, mdp.Request}: 0x01,
	{mdp.V2, mdp.RoleClient, mdp.Partial}: 0x02,
	{mdp.V2, mdp.RoleClient, mdp.Final}:   0x03,
}

// TestWireByte walks every version, role and command including out-of-range
// values, so that both the bytes that must exist and the combinations that
// must not (0.1 PARTIAL, any 0.1 client command, client READY/HEARTBEAT/
// DISCONNECT, unknown versions and roles) are pinned.
func TestWireByte(t *testing.T) {
	versions := []mdp.Version{0, mdp.V1, mdp.V2, 3, 255}
	roles := []mdp.Role{0, mdp.RoleClient, mdp.RoleWorker, 3, 255}
	var commands []mdp.Command
	for c := 0; c <= 8; c++ {
		commands = append(commands, mdp.Command(c))
	}
	commands = append(commands, 255)

	seen := 0
	for _, v := range versions {
		for _, r := range roles {
			for _, c := range commands {
				want, wantOK := wireBytes[wireKey{v, r, c}]
				got, ok := mdp.WireByte(v, r, c)
				if ok != wantOK || got != want {
					t.Errorf("WireByte(%v, %v, %v) = (0x%02x, %t), want (0x%02x, %t)",
						v, r, c, got, ok, want, wantOK)
				}
				if wantOK {
					seen++
				}
			}
		}
	}
	// Guards against the loop ranges above silently missing a table entry.
	if seen != len(wireBytes) {
		t.Fatalf("checked %d existing combinations, table has %d", seen, len(wireBytes))
	}
}

// TestWireByteNonexistent spells out the combinations the specs rule out,
// independently of the table above, so a reader sees them named.
func TestWireByteNonexistent(t *testing.T) {
	for _, k := range []wireKey{
		// 7/MDP "MDP/Client": REQUEST and REPLY have no command frame.
		{mdp.V1, mdp.RoleClient, mdp.Request},
		{mdp.V1, mdp.RoleClient, mdp.Final},
		{mdp.V1, mdp.RoleClient, mdp.Partial},
		// 7/MDP has no PARTIAL: 18/MDP added it.
		{mdp.V1, mdp.RoleWorker, mdp.Partial},
		// 18/MDP "MDP/Client" has only REQUEST, PARTIAL and FINAL.
		{mdp.V2, mdp.RoleClient, mdp.Ready},
		{mdp.V2, mdp.RoleClient, mdp.Heartbeat},
		{mdp.V2, mdp.RoleClient, mdp.Disconnect},
	} {
		if b, ok := mdp.WireByte(k.v, k.r, k.c); ok {
			t.Errorf("WireByte(%v, %v, %v) = 0x%02x, want no wire byte", k.v, k.r, k.c, b)
		}
	}
}

// Names are used in logs and error details; the command names are the
// specs' spelling.
func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{mdp.V1.String(), "MDP/0.1"},
		{mdp.V2.String(), "MDP/0.2"},
		{mdp.Version(9).String(), "MDP/unknown(9)"},
		{mdp.RoleClient.String(), "client"},
		{mdp.RoleWorker.String(), "worker"},
		{mdp.Role(7).String(), "role(7)"},
		{mdp.Ready.String(), "READY"},
		{mdp.Request.String(), "REQUEST"},
		{mdp.Partial.String(), "PARTIAL"},
		{mdp.Final.String(), "FINAL"},
		{mdp.Heartbeat.String(), "HEARTBEAT"},
		{mdp.Disconnect.String(), "DISCONNECT"},
		{mdp.Command(0).String(), "COMMAND(0)"},
		{mdp.Command(7).String(), "COMMAND(7)"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}
