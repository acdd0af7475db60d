// Package testutil holds the helpers every package's tests share: waiting
// on a condition, a log buffer safe for concurrent use, a logger and frame
// conversions. It imports nothing from this module, so that the tests of
// any package (broker and internal/zmtp included, in-package) can use it;
// the broker, client and worker fixtures are in testutil/harness.
package testutil

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// WaitLimit bounds a wait whose condition should hold soon; it is generous
// because a 2-core machine running -race can stall a goroutine for a while.
const WaitLimit = 5 * time.Second

// Eventually polls cond until it holds, failing the test with what if it
// does not within d. Tests wait on a counter or state this way rather than
// sleeping for a guessed time.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Poll is Eventually for a caller that reports the failure itself (with
// the state it waited on, or as one error among others): it returns
// whether cond held within d.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// Logger discards logs unless MDP_TEST_LOG is set, so that goroutines that
// log after a test ends cannot upset the testing package.
func Logger() *slog.Logger {
	if os.Getenv("MDP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// SyncBuffer is a bytes.Buffer that one goroutine may write (a logger, a
// command's output) while another reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes returns a copy of what was written so far.
func (b *SyncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Frames turns strings into frames.
func Frames(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// Strs turns frames into strings.
func Strs(fs [][]byte) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

// PinNames checks that every value of an enum has the name the table
// gives it (the names are what metrics and logs show, so they must not
// drift) and that the table covers all defined values.
func PinNames[T interface {
	~uint8 | ~int
	String() string
}](t testing.TB, kind string, names map[T]string, defined int) {
	t.Helper()
	if len(names) != defined {
		t.Fatalf("%d %s names pinned, %d defined", len(names), kind, defined)
	}
	for v, name := range names {
		if v.String() != name {
			t.Errorf("%s %d is %q, want %q", kind, int(v), v.String(), name)
		}
	}
}
