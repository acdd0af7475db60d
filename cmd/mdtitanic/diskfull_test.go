package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/titanic"
)

// TestDiskFull runs mdtitanic with a file size limit (ulimit -f: writes
// past it fail with EFBIG, as a full disk fails with ENOSPC), fills the
// store, and checks that titanic.request answers 500 without a crash, that
// what was stored stays readable, and that closing requests makes room.
func TestDiskFull(t *testing.T) {
	ep := startBroker(t)
	c := connect(t, ep, 5*time.Second, 3)
	// 65536 blocks of 512 bytes: 32 MiB. bbolt grows its file 16 MiB at a
	// time, so the second growth fails.
	ch := startChild(t, "ulimit -f 65536;", childArgs(ep, t.TempDir(), "--request-workers", "8")...)
	waitTitanic(t, c, ch)
	ctx := context.Background()
	body := bytes.Repeat([]byte("x"), 64<<10)
	var stored []string
	var full bool
	for i := 0; i < 2000 && !full; i++ {
		rep, err := c.Request(ctx, titanic.ServiceRequest, []byte("sink"), body)
		if err != nil {
			t.Fatalf("titanic.request %d: %v; stderr:\n%s", i, err, ch.stderr)
		}
		switch string(rep[0]) {
		case "200":
			stored = append(stored, string(rep[1]))
		case "500":
			full = true
		default:
			t.Fatalf("titanic.request: %q", rep)
		}
	}
	if !full {
		t.Fatalf("no 500 after %d requests of 64 KiB", len(stored))
	}
	t.Logf("500 after %d requests of 64 KiB; log: %s", len(stored), firstLine(ch.stderr.String(), "store failure"))
	if ch.exited() {
		t.Fatalf("mdtitanic exited: %v\n%s", ch.err, ch.stderr)
	}
	if !strings.Contains(ch.stderr.String(), "store failure") {
		t.Errorf("no store failure logged; stderr:\n%s", ch.stderr)
	}
	// Still full: another 500, not a hang or a crash.
	if rep, err := c.Request(ctx, titanic.ServiceRequest, []byte("sink"), body); err != nil || string(rep[0]) != "500" {
		t.Fatalf("when full: %q %v", rep, err)
	}
	// What was stored is still there.
	for _, id := range []string{stored[0], stored[len(stored)-1]} {
		if rep, err := c.Request(ctx, titanic.ServiceReply, []byte(id)); err != nil || string(rep[0]) != "300" {
			t.Fatalf("titanic.reply %s when full: %q %v", id, rep, err)
		}
	}
	// Closing frees pages that new requests reuse.
	for _, id := range stored[:len(stored)/2] {
		if rep, err := c.Request(ctx, titanic.ServiceClose, []byte(id)); err != nil || string(rep[0]) != "200" {
			t.Fatalf("titanic.close when full: %q %v; stderr:\n%s", rep, err, ch.stderr)
		}
	}
	if rep, err := c.Request(ctx, titanic.ServiceRequest, []byte("sink"), body); err != nil || string(rep[0]) != "200" {
		t.Fatalf("after closing half: %q %v; stderr:\n%s", rep, err, ch.stderr)
	}
	if code := ch.stop(10 * time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM; stderr:\n%s", code, ch.stderr)
	}
}

func firstLine(s, containing string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	return ""
}
