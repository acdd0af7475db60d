package titanic

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/pgtest"
)

func TestIDs(t *testing.T) {
	var g idGen
	now := time.Now()
	prev := g.next(now)
	seen := map[ID]bool{prev: true}
	for i := range 10000 {
		// The clock stands still, then steps back: IDs still increase.
		ts := now
		if i > 5000 {
			ts = now.Add(-time.Hour)
		}
		id := g.next(ts)
		if bytes.Compare(id[:], prev[:]) <= 0 || seen[id] {
			t.Fatalf("ID %s after %s: not increasing", id, prev)
		}
		seen[id] = true
		prev = id
		if id[6]>>4 != 7 || id[8]>>6 != 2 {
			t.Fatalf("ID %s: not a UUIDv7", id)
		}
	}
	id := g.next(now)
	s := id.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String %q", s)
	}
	for _, in := range []string{s, strings.ToUpper(s)} {
		got, err := ParseID([]byte(in))
		if err != nil || got != id {
			t.Errorf("ParseID(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", s[:31], s + "0", "g" + s[1:], "-" + s[1:]} {
		if _, err := ParseID([]byte(bad)); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q): %v, want ErrBadID", bad, err)
		}
	}
	if d := g.next(now).Time().Sub(now); d < -time.Millisecond || d > 2*time.Second {
		t.Errorf("Time() off by %v", d)
	}
}

func TestCodec(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	body := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{0xff}, 300)}
	rec := encodeRequest(now, "echo", body)
	created, svc, got, err := decodeRequest(rec, true)
	if err != nil || !created.Equal(now) || svc != "echo" || !reflect.DeepEqual(got, body) {
		t.Fatalf("request round trip: %v %q %q %v", created, svc, got, err)
	}
	if s, err := decodeRequestService(rec); err != nil || s != "echo" {
		t.Fatalf("service: %q %v", s, err)
	}
	rep := encodeReply(now, body)
	received, got, err := decodeReply(rep, false)
	if err != nil || !received.Equal(now) || !reflect.DeepEqual(got, body) {
		t.Fatalf("reply round trip: %v %q %v", received, got, err)
	}
	// Every truncation and random garbage fails cleanly, never panics.
	for i := range len(rec) {
		if _, _, _, err := decodeRequest(rec[:i], true); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("request truncated at %d: %v", i, err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if r.IntN(2) == 0 && len(b) > 0 {
			b[0] = recordV1
		}
		decodeRequest(b, true)
		decodeReply(b, true)
	}
}

func openTest(t *testing.T, path string, o BoltOptions) *BoltStore {
	t.Helper()
	s, err := OpenBolt(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t *testing.T, s Store, ops ...*Op) {
	t.Helper()
	if err := s.Commit(ops); err != nil {
		t.Fatal(err)
	}
}

// storeKind opens a store of one kind: open returns a fresh, empty store's
// opener, which opens the same storage again after Close.
type storeKind struct {
	name string
	open func(t *testing.T) func() Store
}

func storeKinds() []storeKind {
	return []storeKind{
		{"bolt", func(t *testing.T) func() Store {
			path := filepath.Join(t.TempDir(), "t.db")
			return func() Store { return openTest(t, path, BoltOptions{Verify: true}) }
		}},
		{"postgres", func(t *testing.T) func() Store {
			url := pgtest.Start(t).NewDatabase()
			return func() Store { return openPG(t, url, PGOptions{}) }
		}},
	}
}

func openPG(t testing.TB, url string, o PGOptions) *PGStore {
	t.Helper()
	s, err := OpenPostgres(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreSemantics: what Titanic relies on, the same for every store.
func TestStoreSemantics(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			open := k.open(t)
			testStoreSemantics(t, open)
		})
	}
}

func testStoreSemantics(t *testing.T, open func() Store) {
	s := open()
	var g idGen
	now := time.Now()
	a, b, c := g.next(now), g.next(now), g.next(now)
	commit(t, s,
		&Op{Kind: OpSubmit, ID: a, Service: "svc", Body: [][]byte{[]byte("A")}, Time: now},
		&Op{Kind: OpSubmit, ID: b, Service: "svc", Body: [][]byte{[]byte("B")}, Time: now},
		&Op{Kind: OpSubmit, ID: c, Service: "other", Body: [][]byte{[]byte("C")}, Time: now})
	if got := s.Counts(); got.Pending != 3 || got.Replies != 0 {
		t.Fatalf("counts %+v", got)
	}
	var pending []ID
	s.Pending(func(id ID, service string) bool { pending = append(pending, id); return true })
	if !reflect.DeepEqual(pending, []ID{a, b, c}) {
		t.Fatalf("pending %v, want oldest first", pending)
	}
	// A reply is stored once; a second one is ignored, never replaces it.
	r1 := &Op{Kind: OpReply, ID: a, Body: [][]byte{[]byte("first")}, Time: now}
	r2 := &Op{Kind: OpReply, ID: a, Body: [][]byte{[]byte("second")}, Time: now}
	commit(t, s, r1, r2)
	if !r1.Applied || r2.Applied {
		t.Fatalf("applied %v %v, want true false", r1.Applied, r2.Applied)
	}
	e, err := s.Get(a)
	if err != nil || !e.Found || !e.Replied || string(e.Reply[0]) != "first" || e.Service != "svc" {
		t.Fatalf("Get: %+v %v", e, err)
	}
	if svc, body, ok, err := s.Request(b); err != nil || !ok || svc != "svc" || string(body[0]) != "B" {
		t.Fatalf("Request: %q %q %v %v", svc, body, ok, err)
	}
	// Close deletes; a reply for a closed request is not stored.
	cl := &Op{Kind: OpClose, ID: b}
	late := &Op{Kind: OpReply, ID: b, Body: [][]byte{[]byte("late")}, Time: now}
	commit(t, s, cl, late)
	if !cl.Applied || late.Applied {
		t.Fatalf("close %v, late reply %v", cl.Applied, late.Applied)
	}
	if e, _ := s.Get(b); e.Found {
		t.Fatalf("closed entry still there: %+v", e)
	}
	if got := s.Counts(); got.Pending != 1 || got.Replies != 1 {
		t.Fatalf("counts %+v", got)
	}
	// Survives reopening.
	s.Close()
	if _, err := s.Get(a); !errors.Is(err, ErrStoreClosed) {
		t.Fatalf("Get after Close: %v, want ErrStoreClosed", err)
	}
	s = open()
	if got := s.Counts(); got.Pending != 1 || got.Replies != 1 {
		t.Fatalf("counts after reopen %+v", got)
	}
	// Expiry: the reply of a, then the pending c.
	ex := &Op{Kind: OpExpire, ReplyBefore: time.Now().Add(time.Second)}
	commit(t, s, ex)
	if ex.ExpiredReplies != 1 || len(ex.ExpiredRequests) != 0 {
		t.Fatalf("expire replies: %+v", ex)
	}
	ex = &Op{Kind: OpExpire, RequestBefore: time.Now().Add(time.Second)}
	commit(t, s, ex)
	if len(ex.ExpiredRequests) != 1 || ex.ExpiredRequests[0] != c {
		t.Fatalf("expire requests: %+v", ex)
	}
	if got := s.Counts(); got.Pending != 0 || got.Replies != 0 {
		t.Fatalf("counts after expiry %+v", got)
	}

	// Frames come back as they went in: several, empty ones, binary.
	frames := [][]byte{{}, []byte("x"), bytes.Repeat([]byte{0, 0xff}, 1000), {}}
	d := g.next(time.Now())
	commit(t, s, &Op{Kind: OpSubmit, ID: d, Service: "bin", Body: frames, Time: time.Now()})
	if svc, body, ok, err := s.Request(d); err != nil || !ok || svc != "bin" || !framesEqual(body, frames) {
		t.Fatalf("Request frames: %q %q %v %v", svc, body, ok, err)
	}
	// A second submission under a stored ID is not applied.
	dup := &Op{Kind: OpSubmit, ID: d, Service: "other", Body: [][]byte{[]byte("dup")}, Time: time.Now()}
	commit(t, s, dup)
	if dup.Applied {
		t.Fatal("duplicate ID applied")
	}
	rep := &Op{Kind: OpReply, ID: d, Body: frames, Time: time.Now()}
	commit(t, s, rep)
	if e, err := s.Get(d); err != nil || !e.Replied || e.Service != "bin" || !framesEqual(e.Reply, frames) {
		t.Fatalf("Get frames: %+v %v", e, err)
	}
	// In one batch: a body of no frames, the same ID twice (the first wins),
	// and frames on both sides of it.
	e1, f1 := g.next(time.Now()), g.next(time.Now())
	first := &Op{Kind: OpSubmit, ID: e1, Service: "empty", Body: nil, Time: time.Now()}
	again := &Op{Kind: OpSubmit, ID: e1, Service: "again", Body: [][]byte{[]byte("z")}, Time: time.Now()}
	third := &Op{Kind: OpSubmit, ID: f1, Service: "three", Body: frames[1:], Time: time.Now()}
	commit(t, s, first, again, third)
	if !first.Applied || again.Applied || !third.Applied {
		t.Fatalf("applied %v %v %v, want true false true", first.Applied, again.Applied, third.Applied)
	}
	if svc, body, ok, err := s.Request(e1); err != nil || !ok || svc != "empty" || len(body) != 0 {
		t.Fatalf("Request of no frames: %q %q %v %v", svc, body, ok, err)
	}
	if svc, body, ok, err := s.Request(f1); err != nil || !ok || svc != "three" || !framesEqual(body, frames[1:]) {
		t.Fatalf("Request after an empty body: %q %q %v %v", svc, body, ok, err)
	}
	commit(t, s, &Op{Kind: OpClose, ID: e1}, &Op{Kind: OpClose, ID: f1})
	// Service names are bytes (MDP): not UTF-8, a NUL, are stored as they are.
	odd := "\xff\x00svc\xc3"
	o1 := g.next(time.Now())
	commit(t, s, &Op{Kind: OpSubmit, ID: o1, Service: odd, Body: [][]byte{{}}, Time: time.Now()})
	if e, err := s.Get(o1); err != nil || e.Service != odd {
		t.Fatalf("Get of a non-UTF-8 service name: %+v %v", e, err)
	}
	commit(t, s, &Op{Kind: OpClose, ID: o1})
	// Unknown IDs are not errors.
	unknown := g.next(time.Now())
	if e, err := s.Get(unknown); err != nil || e.Found {
		t.Fatalf("Get unknown: %+v %v", e, err)
	}
	if _, _, ok, err := s.Request(unknown); err != nil || ok {
		t.Fatalf("Request unknown: %v %v", ok, err)
	}
	if cl := (&Op{Kind: OpClose, ID: unknown}); s.Commit([]*Op{cl}) != nil || cl.Applied {
		t.Fatalf("close unknown: applied %v", cl.Applied)
	}
	// Expiry honours its limit, oldest first; Pending stops when told.
	var ids []ID
	var ops []*Op
	old := time.Now().Add(-time.Hour)
	var og idGen // g will not go back in time.
	for range 5 {
		id := og.next(old)
		ids = append(ids, id)
		ops = append(ops, &Op{Kind: OpSubmit, ID: id, Service: "old", Body: [][]byte{{}}, Time: old})
	}
	commit(t, s, ops...)
	n := 0
	s.Pending(func(ID, string) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("Pending called fn %d times after it returned false", n)
	}
	ex = &Op{Kind: OpExpire, RequestBefore: time.Now().Add(-time.Minute), Limit: 3}
	commit(t, s, ex)
	if !reflect.DeepEqual(ex.ExpiredRequests, ids[:3]) {
		t.Fatalf("expired %v, want the 3 oldest %v", ex.ExpiredRequests, ids[:3])
	}
	if got := s.Counts(); got.Pending != 2 || got.Replies != 1 {
		t.Fatalf("counts %+v", got)
	}
}

func framesEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestBoltStoreFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	s := openTest(t, path, BoltOptions{MaxSize: 1 << 20})
	var g idGen
	big := [][]byte{bytes.Repeat([]byte("x"), 8<<10)}
	var stored []ID
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		id := g.next(time.Now())
		err = s.Commit([]*Op{{Kind: OpSubmit, ID: id, Service: "s", Body: big, Time: time.Now()}})
		if err == nil {
			stored = append(stored, id)
		}
	}
	if !errors.Is(err, ErrStoreFull) {
		t.Fatalf("after %d requests: %v, want ErrStoreFull", len(stored), err)
	}
	t.Logf("full after %d requests: %v", len(stored), err)
	// Still readable, and deleting makes room again.
	if e, err := s.Get(stored[0]); err != nil || !e.Found {
		t.Fatalf("Get when full: %+v %v", e, err)
	}
	for _, id := range stored[:len(stored)/2] {
		commit(t, s, &Op{Kind: OpClose, ID: id})
	}
	commit(t, s, &Op{Kind: OpSubmit, ID: g.next(time.Now()), Service: "s", Body: big, Time: time.Now()})
}

func TestBoltOpenErrors(t *testing.T) {
	dir := t.TempDir()
	// Not a database.
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a bolt file "), 1024), 0o600)
	if _, err := OpenBolt(garbage, BoltOptions{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), garbage) {
		t.Errorf("garbage file: %v, want ErrCorrupt naming the file", err)
	}
	// Truncated to less than a page.
	short := filepath.Join(dir, "short.db")
	os.WriteFile(short, []byte("x"), 0o600)
	if _, err := OpenBolt(short, BoltOptions{}); err == nil || !strings.Contains(err.Error(), short) {
		t.Errorf("short file: %v", err)
	}
	// A directory where the file should be.
	asDir := filepath.Join(dir, "dir.db")
	os.Mkdir(asDir, 0o700)
	if _, err := OpenBolt(asDir, BoltOptions{}); err == nil || !strings.Contains(err.Error(), asDir) {
		t.Errorf("directory: %v", err)
	}
	// A path under a regular file.
	if _, err := OpenBolt(filepath.Join(garbage, "x.db"), BoltOptions{}); err == nil {
		t.Errorf("path under a file: no error")
	}
	// Locked by another open store.
	p := filepath.Join(dir, "locked.db")
	s := openTest(t, p, BoltOptions{})
	_ = s
	if _, err := OpenBolt(p, BoltOptions{LockTimeout: 50 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("locked: %v", err)
	}
}

// TestBoltCorruptPages damages the data pages of a store (not the meta
// pages, which bbolt checksums): whatever happens, Open and every call
// return errors instead of crashing the process.
func TestBoltCorruptPages(t *testing.T) {
	for seed := range uint64(8) {
		path := filepath.Join(t.TempDir(), "t.db")
		s, err := OpenBolt(path, BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var g idGen
		var ids []ID
		for range 20 {
			var ops []*Op
			for range 50 {
				id := g.next(time.Now())
				ids = append(ids, id)
				ops = append(ops, &Op{Kind: OpSubmit, ID: id, Service: "svc", Body: [][]byte{bytes.Repeat([]byte("b"), 100)}, Time: time.Now()})
			}
			commit(t, s, ops...)
		}
		used := int(s.Counts().Bytes) // Pages in use.
		s.Close()
		data, _ := os.ReadFile(path)
		r := rand.New(rand.NewPCG(seed, 7))
		// Pages 0 and 1 are the meta pages; scribble over later ones, the
		// first bytes of a page (its header) half of the time.
		page := os.Getpagesize()
		for range 4 {
			off := 2*page + r.IntN(used-2*page-64)
			if seed%2 == 0 {
				off -= off % page
			}
			for i := range 64 {
				data[off+i] = byte(r.UintN(256))
			}
		}
		os.WriteFile(path, data, 0o600)

		s, err = OpenBolt(path, BoltOptions{})
		if err != nil {
			t.Logf("seed %d: open: %v", seed, err)
			continue
		}
		var errs int
		if err := s.Pending(func(ID, string) bool { return true }); err != nil {
			errs++
		}
		for _, id := range ids {
			if _, err := s.Get(id); err != nil {
				errs++
			}
			if _, _, _, err := s.Request(id); err != nil {
				errs++
			}
		}
		if err := s.Commit([]*Op{{Kind: OpSubmit, ID: g.next(time.Now()), Service: "s", Body: [][]byte{{}}, Time: time.Now()}}); err != nil {
			errs++
		}
		t.Logf("seed %d: opened; %d calls failed", seed, errs)
		s.Close()
	}
	// With Verify, damage is found at open.
	path := filepath.Join(t.TempDir(), "t.db")
	s, _ := OpenBolt(path, BoltOptions{})
	var g idGen
	for range 10 {
		var ops []*Op
		for range 100 {
			ops = append(ops, &Op{Kind: OpSubmit, ID: g.next(time.Now()), Service: "svc", Body: [][]byte{bytes.Repeat([]byte("b"), 100)}, Time: time.Now()})
		}
		commit(t, s, ops...)
	}
	s.Close()
	data, _ := os.ReadFile(path)
	for i := 2 * 4096; i < len(data); i += 4096 {
		copy(data[i:i+16], bytes.Repeat([]byte{0xAA}, 16)) // Every page header.
	}
	os.WriteFile(path, data, 0o600)
	if s, err := OpenBolt(path, BoltOptions{Verify: true}); err == nil {
		s.Close()
		t.Errorf("Verify: no error for damaged pages")
	} else if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify: %v, want ErrCorrupt", err)
	}
}

// slowStore counts commits and makes each take a while, so that batching
// is visible.
type slowStore struct {
	Store
	mu      sync.Mutex
	batches []int
	fail    error
}

func (s *slowStore) Commit(ops []*Op) error {
	time.Sleep(5 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(ops))
	return s.fail
}

func TestCommitterBatches(t *testing.T) {
	st := &slowStore{}
	c := newCommitter(st, 100, 1<<20, false)
	var wg sync.WaitGroup
	for range 300 {
		wg.Go(func() {
			if err := c.commit(&Op{Kind: OpSubmit}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c.stop()
	total := 0
	for _, n := range st.batches {
		if n > 100 {
			t.Errorf("batch of %d > max 100", n)
		}
		total += n
	}
	if total != 300 || len(st.batches) > 30 {
		t.Errorf("%d ops in %d batches %v: want 300 ops in few batches", total, len(st.batches), st.batches)
	}
	// After stop, submits fail at once.
	if err := c.commit(&Op{Kind: OpSubmit}); !errors.Is(err, errCommitterStopped) {
		t.Errorf("after stop: %v", err)
	}
	// A failed commit fails every op of its batch.
	st2 := &slowStore{fail: errors.New("disk on fire")}
	c2 := newCommitter(st2, 100, 1<<20, false)
	defer c2.stop()
	var failed sync.WaitGroup
	for range 10 {
		failed.Go(func() {
			if err := c2.commit(&Op{Kind: OpSubmit}); err == nil || !strings.Contains(err.Error(), "fire") {
				t.Errorf("want the commit error, got %v", err)
			}
		})
	}
	failed.Wait()
}

// procsProbe is the real store, recording GOMAXPROCS during each commit.
type procsProbe struct {
	Store
	seen []int
}

func (p *procsProbe) Commit(ops []*Op) error {
	p.seen = append(p.seen, runtime.GOMAXPROCS(0))
	return p.Store.Commit(ops)
}

// Config.SpareProc: with GOMAXPROCS 1 a commit runs with 2 and 1 is
// restored after it; with more, without SpareProc, or on one CPU, nothing
// changes.
func TestCommitterSpareProc(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	raised := 2
	if runtime.NumCPU() < 2 {
		raised = 1 // No second CPU for a second processor.
	}
	var ids idGen
	for _, tc := range []struct {
		procs  int
		spare  bool
		during int
	}{{1, true, raised}, {1, false, 1}, {2, true, 2}} {
		runtime.GOMAXPROCS(tc.procs)
		st, err := OpenBolt(filepath.Join(t.TempDir(), "t.db"), BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		probe := &procsProbe{Store: st}
		c := newCommitter(probe, 100, 1<<20, tc.spare)
		now := time.Now()
		err = c.commit(&Op{Kind: OpSubmit, ID: ids.next(now), Service: "svc", Body: [][]byte{[]byte("x")}, Time: now})
		c.stop()
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(probe.seen) != 1 || probe.seen[0] != tc.during {
			t.Errorf("GOMAXPROCS %d, SpareProc %v: %v during the commit, want %d", tc.procs, tc.spare, probe.seen, tc.during)
		}
		if got := runtime.GOMAXPROCS(0); got != tc.procs {
			t.Errorf("GOMAXPROCS %d, SpareProc %v: %d after the commit", tc.procs, tc.spare, got)
		}
	}
}
