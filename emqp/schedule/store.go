package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Record is one schedule as a Store keeps it.
type Record struct {
	Key       string    `json:"key"`
	Queue     string    `json:"queue"`
	Headers   string    `json:"headers"`
	Interval  int64     `json:"interval_seconds"` // > 0, or -1 with Cron.
	Cron      string    `json:"cron,omitempty"`
	Job       string    `json:"job"`
	Remaining int       `json:"remaining"` // Runs left, or Forever.
	Nohaste   bool      `json:"nohaste,omitempty"`
	Guarantee bool      `json:"guarantee,omitempty"`
	Anchor    time.Time `json:"anchor"` // Interval grid origin.
	Created   time.Time `json:"created"`
}

// Spec returns the record's schedule.
func (r *Record) Spec() Spec {
	s := Spec{Queue: r.Queue, Headers: r.Headers, Cron: r.Cron, Job: []byte(r.Job),
		RunCount: r.Remaining, Nohaste: r.Nohaste, Guarantee: r.Guarantee}
	if r.Interval > 0 {
		s.Interval = time.Duration(r.Interval) * time.Second
	}
	return s
}

// Store persists schedules. Put and Delete are applied together, in one
// durable transaction, by Apply.
type Store interface {
	Load() ([]Record, error)
	Apply(put []Record, del []string) error
	Close() error
}

// Memory is a Store that forgets everything on exit.
type Memory struct{ m map[string]Record }

// Load returns the records, sorted by key.
func (s *Memory) Load() ([]Record, error) {
	out := make([]Record, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Apply stores put and removes del.
func (s *Memory) Apply(put []Record, del []string) error {
	if s.m == nil {
		s.m = map[string]Record{}
	}
	for _, k := range del {
		delete(s.m, k)
	}
	for _, r := range put {
		s.m[r.Key] = r
	}
	return nil
}

// Close does nothing.
func (s *Memory) Close() error { return nil }

var bucket = []byte("emqp-schedules")

// Bolt is a Store in a bbolt file: every Apply is one fsynced
// transaction.
type Bolt struct{ db *bolt.DB }

// OpenBolt opens or creates the store at path, creating its directory.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("schedule store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("schedule store %s: in use by another process", path)
		}
		return nil, fmt.Errorf("schedule store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("schedule store %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Load returns every record, sorted by key. A record that does not decode
// is reported, not skipped silently.
func (s *Bolt) Load() ([]Record, error) {
	var out []Record
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil || r.Key != string(k) {
				bad = append(bad, fmt.Errorf("record %q unreadable: %v", k, err))
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(bad...)
}

// Apply stores put and removes del in one transaction.
func (s *Bolt) Apply(put []Record, del []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, k := range del {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		for _, r := range put {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(r.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the file.
func (s *Bolt) Close() error { return s.db.Close() }
