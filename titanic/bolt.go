package titanic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Why bbolt (go.etcd.io/bbolt) is the default store:
//
//   - It is the storage engine of etcd, maintained by the etcd project, in
//     production for a decade under Kubernetes; its crash safety is tested
//     (its own fault-injection tests) and understood.
//   - One file, pure Go, no cgo, no background threads, no compaction
//     stalls: an operator backs up or inspects one file.
//   - Its transaction model is exactly what Titanic needs: a write
//     transaction is atomic and, on commit, flushed with fdatasync before
//     the commit point (a checksummed meta page, double-buffered) is
//     written and flushed again. After a crash the file opens at the last
//     committed transaction, never a torn one. Read transactions are MVCC
//     snapshots over mmap, concurrent with the writer, so titanic.reply
//     never waits for a commit.
//   - Writes are serialised and every commit costs two flushes, which is
//     why Titanic puts many requests into one transaction (group commit,
//     see committer): durability costs two fdatasyncs per batch, not per
//     request.
//
// Pebble (an LSM with a write-ahead log) writes faster under heavy load but
// is a much larger dependency with background compactions; a B+tree fits a
// queue whose entries live for seconds to days and are then deleted, and
// whose working set is small. The Store interface keeps the choice open.

// Bucket names.
var (
	bucketReq  = []byte("req")  // ID -> request record.
	bucketPend = []byte("pend") // ID -> service name, for requests without a reply.
	bucketRep  = []byte("rep")  // ID -> reply record.
	bucketRexp = []byte("rexp") // received time (8 bytes, Unix ns) + ID -> empty: reply expiry index.
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format")
)

// storeFormat is the on-disk layout version, kept in the meta bucket.
const storeFormat = "titanic/1"

// fillPercent packs B+tree pages: keys (time-ordered IDs and times) arrive
// mostly in increasing order, for which bbolt's default 50% wastes half of
// every page.
const fillPercent = 0.9

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// MaxSize bounds the database file in bytes (0: no bound). A commit
	// that would grow it further fails with ErrStoreFull.
	MaxSize int64
	// LockTimeout is how long Open waits for another process holding the
	// file's lock (default 1s); then it fails with a clear error.
	LockTimeout time.Duration
	// Verify checks every page of the file at open (bbolt's consistency
	// check, which reads the whole file) and fails on any inconsistency.
	Verify bool
	// InitialMmapSize is the initial size of bbolt's memory map (default
	// 1 GiB of address space). Read transactions never block the writer
	// while the file fits in the map.
	InitialMmapSize int
}

// BoltStore is the default Store: one bbolt file.
type BoltStore struct {
	db   *bolt.DB
	path string

	pending, replies atomic.Int64
	size             atomic.Int64

	mu     sync.Mutex
	broken error // Sticky: set when the engine panicked on corruption.
	closed bool
}

var _ Store = (*BoltStore)(nil)

// OpenBolt opens (or creates) the bbolt store at path. Errors name the file
// and say what is wrong: not a database, a corrupted one, a lock held by
// another process, a directory that cannot be written.
func OpenBolt(path string, o BoltOptions) (s *BoltStore, err error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.InitialMmapSize <= 0 {
		o.InitialMmapSize = 1 << 30
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	if statErr != nil && !created {
		return nil, fmt.Errorf("titanic: store %s: %w", path, statErr)
	}
	// bbolt trusts its pages; a damaged file can make it panic rather than
	// return an error. Nothing is half-done at open, so turn that into an
	// error (and close the file if bbolt got as far as opening it).
	var db *bolt.DB
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				db.Close()
			}
			s, err = nil, fmt.Errorf("titanic: store %s: %w: %v (restore it from a backup, or move it away to start empty)", path, ErrCorrupt, p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: o.LockTimeout,
		// The freelist is written with every commit. Not writing it
		// (NoFreelistSync) saves a page per commit, but then bbolt rebuilds
		// it at open, and after a failed commit, by walking the whole file on
		// a goroutine of its own, where a damaged page is a panic that
		// nothing can recover: a corrupted store would crash the process
		// instead of failing with an error.
		NoFreelistSync:  false,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: o.InitialMmapSize,
		MaxSize:         int(o.MaxSize),
	})
	if err != nil {
		db = nil
		return nil, openError(path, err)
	}
	s = &BoltStore{db: db, path: path}
	if err := s.init(created, o.Verify); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("titanic: store %s is locked by another process (is another Titanic running on this directory?)", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return fmt.Errorf("titanic: store %s: %w: %v (restore it from a backup, or move it away to start empty)", path, ErrCorrupt, err)
	case errors.Is(err, bolterrors.ErrMaxSizeReached):
		return fmt.Errorf("titanic: store %s: %w: %v", path, ErrStoreFull, err)
	}
	return fmt.Errorf("titanic: store %s: %w", path, err)
}

func (s *BoltStore) init(created, verify bool) error {
	if created {
		// The new file's directory entry must be durable too, or a crash
		// could lose the whole file with every request answered 200.
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			return fmt.Errorf("titanic: store %s: %w", s.path, err)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch f := meta.Get(keyFormat); {
		case f == nil:
			if tx.Bucket(bucketReq) != nil {
				return fmt.Errorf("%w: format marker missing", ErrCorrupt)
			}
			if err := meta.Put(keyFormat, []byte(storeFormat)); err != nil {
				return err
			}
		case string(f) != storeFormat:
			return fmt.Errorf("%w: unknown format %q (want %q)", ErrCorrupt, f, storeFormat)
		}
		for _, name := range [][]byte{bucketReq, bucketPend, bucketRep, bucketRexp} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return openError(s.path, err)
	}
	return s.db.View(func(tx *bolt.Tx) error {
		if verify {
			for err := range tx.Check() {
				return fmt.Errorf("titanic: store %s: %w: %v", s.path, ErrCorrupt, err)
			}
		}
		s.pending.Store(int64(tx.Bucket(bucketPend).Stats().KeyN))
		s.replies.Store(int64(tx.Bucket(bucketRep).Stats().KeyN))
		s.size.Store(tx.Size())
		return nil
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Path returns the database file's path.
func (s *BoltStore) Path() string { return s.path }

// guard runs fn, turning a panic inside bbolt (which trusts its pages and
// panics on some corruptions) into ErrCorrupt, after which the store
// refuses further work: a process that keeps writing into a damaged B+tree
// can only make it worse.
func (s *BoltStore) guard(fn func() error) (err error) {
	s.mu.Lock()
	broken, closed := s.broken, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrStoreClosed
	case broken != nil:
		return broken
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("titanic: store %s: %w: engine panic: %v (stop Titanic and restore or move the file)", s.path, ErrCorrupt, p)
			s.mu.Lock()
			s.broken = err
			s.mu.Unlock()
		}
	}()
	return fn()
}

// Commit implements Store.
func (s *BoltStore) Commit(ops []*Op) error {
	var dPending, dReplies int64
	var size int64
	err := s.guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b := buckets(tx)
			dPending, dReplies = 0, 0
			for _, op := range ops {
				dp, dr, err := b.apply(op)
				if err != nil {
					return err
				}
				dPending += dp
				dReplies += dr
			}
			size = tx.Size()
			return nil
		})
	})
	if err != nil {
		for _, op := range ops {
			op.Applied, op.ExpiredReplies, op.ExpiredRequests = false, 0, nil
		}
		switch {
		case errors.Is(err, ErrCorrupt), errors.Is(err, ErrStoreClosed):
			return err
		case errors.Is(err, bolterrors.ErrMaxSizeReached):
			return fmt.Errorf("titanic: store %s: %w: %v", s.path, ErrStoreFull, err)
		}
		return fmt.Errorf("titanic: store %s: commit: %w", s.path, err)
	}
	s.pending.Add(dPending)
	s.replies.Add(dReplies)
	s.size.Store(size)
	return nil
}

type bucketSet struct {
	req, pend, rep, rexp *bolt.Bucket
}

func buckets(tx *bolt.Tx) bucketSet {
	b := bucketSet{tx.Bucket(bucketReq), tx.Bucket(bucketPend), tx.Bucket(bucketRep), tx.Bucket(bucketRexp)}
	b.req.FillPercent, b.pend.FillPercent, b.rep.FillPercent, b.rexp.FillPercent =
		fillPercent, fillPercent, fillPercent, fillPercent
	return b
}

func rexpKey(t time.Time, id ID) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	copy(k[8:], id[:])
	return k
}

// apply applies one op and returns the changes of the pending and reply
// counts.
func (b bucketSet) apply(op *Op) (dPending, dReplies int64, err error) {
	op.Applied, op.ExpiredReplies, op.ExpiredRequests = false, 0, nil
	k := op.ID[:]
	switch op.Kind {
	case OpSubmit:
		if b.req.Get(k) != nil || b.rep.Get(k) != nil {
			return 0, 0, nil // ID collision: not applied, the caller answers 500.
		}
		if err := b.req.Put(k, encodeRequest(op.Time, op.Service, op.Body)); err != nil {
			return 0, 0, err
		}
		if err := b.pend.Put(k, []byte(op.Service)); err != nil {
			return 0, 0, err
		}
		op.Applied = true
		return 1, 0, nil
	case OpReply:
		if b.req.Get(k) == nil || b.rep.Get(k) != nil {
			return 0, 0, nil // Closed or expired meanwhile, or already answered.
		}
		if err := b.rep.Put(k, encodeReply(op.Time, op.Body)); err != nil {
			return 0, 0, err
		}
		if err := b.rexp.Put(rexpKey(op.Time, op.ID), []byte{}); err != nil {
			return 0, 0, err
		}
		if b.pend.Get(k) != nil {
			dPending = -1
			if err := b.pend.Delete(k); err != nil {
				return 0, 0, err
			}
		}
		op.Applied = true
		return dPending, 1, nil
	case OpClose:
		return b.remove(op.ID, &op.Applied)
	case OpExpire:
		return b.expire(op)
	}
	return 0, 0, fmt.Errorf("titanic: unknown op kind %d", op.Kind)
}

// remove deletes everything stored under id.
func (b bucketSet) remove(id ID, found *bool) (dPending, dReplies int64, err error) {
	k := id[:]
	if v := b.rep.Get(k); v != nil {
		*found = true
		dReplies = -1
		// A reply record too damaged to give its time leaves an orphan in
		// the expiry index, which expire removes when it gets there.
		if t, _, derr := decodeReply(v, false); derr == nil {
			if err := b.rexp.Delete(rexpKey(t, id)); err != nil {
				return 0, 0, err
			}
		}
		if err := b.rep.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	if b.pend.Get(k) != nil {
		*found = true
		dPending = -1
		if err := b.pend.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	if b.req.Get(k) != nil {
		*found = true
		if err := b.req.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	return dPending, dReplies, nil
}

func (b bucketSet) expire(op *Op) (dPending, dReplies int64, err error) {
	limit := op.Limit
	if limit <= 0 {
		limit = int(^uint(0) >> 1)
	}
	if !op.ReplyBefore.IsZero() {
		// Collect first: deleting under a moving bbolt cursor can skip keys.
		cutoff := uint64(op.ReplyBefore.UnixNano())
		var keys [][]byte
		c := b.rexp.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
			if len(k) != 8+len(ID{}) {
				keys = append(keys, bytes.Clone(k)) // Damaged key: drop it.
				continue
			}
			if binary.BigEndian.Uint64(k) >= cutoff {
				break
			}
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.rexp.Delete(k); err != nil {
				return 0, 0, err
			}
			if len(k) != 8+len(ID{}) {
				continue
			}
			var id ID
			copy(id[:], k[8:])
			var found bool
			dp, dr, err := b.remove(id, &found)
			if err != nil {
				return 0, 0, err
			}
			dPending += dp
			dReplies += dr
			if dr != 0 {
				op.ExpiredReplies++
			}
		}
	}
	if !op.RequestBefore.IsZero() {
		var ids []ID
		c := b.pend.Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			var id ID
			if len(k) != len(id) {
				continue
			}
			copy(id[:], k)
			if !id.Time().Before(op.RequestBefore) {
				break
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			var found bool
			dp, dr, err := b.remove(id, &found)
			if err != nil {
				return 0, 0, err
			}
			dPending += dp
			dReplies += dr
		}
		op.ExpiredRequests = ids
	}
	return dPending, dReplies, nil
}

// Get implements Store.
func (s *BoltStore) Get(id ID) (Entry, error) {
	var e Entry
	err := s.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			e = Entry{}
			k := id[:]
			if v := tx.Bucket(bucketRep).Get(k); v != nil {
				t, body, err := decodeReply(v, true)
				if err != nil {
					return fmt.Errorf("reply %s: %w", id, err)
				}
				e.Found, e.Replied, e.Reply, e.RepliedAt = true, true, body, t
			}
			if v := tx.Bucket(bucketReq).Get(k); v != nil {
				svc, err := decodeRequestService(v)
				if err != nil {
					return fmt.Errorf("request %s: %w", id, err)
				}
				e.Found, e.Service = true, svc
			}
			return nil
		})
	})
	if err != nil {
		return Entry{}, fmt.Errorf("titanic: store %s: %w", s.path, err)
	}
	return e, nil
}

// Request implements Store.
func (s *BoltStore) Request(id ID) (service string, body [][]byte, ok bool, err error) {
	err = s.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketReq).Get(id[:])
			if v == nil {
				return nil
			}
			_, svc, b, err := decodeRequest(v, true)
			if err != nil {
				return fmt.Errorf("request %s: %w", id, err)
			}
			service, body, ok = svc, b, true
			return nil
		})
	})
	if err != nil {
		return "", nil, false, fmt.Errorf("titanic: store %s: %w", s.path, err)
	}
	return service, body, ok, nil
}

// Pending implements Store.
func (s *BoltStore) Pending(fn func(id ID, service string) bool) error {
	err := s.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketPend).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var id ID
				if len(k) != len(id) {
					return fmt.Errorf("%w: pending key of %d bytes", ErrCorrupt, len(k))
				}
				copy(id[:], k)
				if !fn(id, string(v)) {
					return nil
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("titanic: store %s: %w", s.path, err)
	}
	return nil
}

// Counts implements Store.
func (s *BoltStore) Counts() Counts {
	return Counts{Pending: int(s.pending.Load()), Replies: int(s.replies.Load()), Bytes: s.size.Load()}
}

// Close implements Store.
func (s *BoltStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.db.Close()
}
