package titanic

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/pgtest"
)

// BenchmarkStoreGroupCommit: the storage layer alone. TITANIC_BENCH_CLIENTS
// goroutines (default 128, like the default RequestWorkers) each store
// requests one after the other through the group committer into a bbolt
// file, fdatasync on every commit: durable submissions per second without
// the network, i.e. what the disk and bbolt allow.
func BenchmarkStoreGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 16, 128, 512} {
		b.Run("writers="+itoa(writers), func(b *testing.B) {
			s, err := OpenBolt(filepath.Join(b.TempDir(), "t.db"), BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			benchGroupCommit(b, s, writers)
		})
	}
}

// BenchmarkStoreSubmit: durable submissions per second through the group
// committer, bbolt and PostgreSQL side by side in one run, on the same
// disk: the bbolt file and the PostgreSQL cluster (a throwaway one, started
// by internal/pgtest, fsync on, default synchronous_commit) both live in
// the temporary directory. One writer measures the latency of one durable
// commit; 128 (the default RequestWorkers) what group commit makes of it.
func BenchmarkStoreSubmit(b *testing.B) {
	pg := pgtest.Start(b) // Here: a sub-benchmark's cleanups run after each of its runs.
	for _, kind := range []string{"bolt", "postgres"} {
		for _, writers := range []int{1, 128} {
			b.Run(kind+"/writers="+itoa(writers), func(b *testing.B) {
				var s Store
				switch kind {
				case "bolt":
					bs, err := OpenBolt(filepath.Join(b.TempDir(), "t.db"), BoltOptions{})
					if err != nil {
						b.Fatal(err)
					}
					s = bs
				case "postgres":
					s = openPG(b, pg.NewDatabase(), PGOptions{})
				}
				defer s.Close()
				benchGroupCommit(b, s, writers)
			})
		}
	}
}

func benchGroupCommit(b *testing.B, s Store, writers int) {
	c := newCommitter(s, DefaultMaxBatch, DefaultMaxBatchBytes, false)
	defer c.stop()
	var g idGen
	body := [][]byte{bytes.Repeat([]byte("x"), 100)}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		wg.Go(func() {
			for range n {
				now := time.Now()
				if err := c.commit(&Op{Kind: OpSubmit, ID: g.next(now), Service: "svc", Body: body, Time: now}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "subs/s")
	b.ReportMetric(float64(c.ops.Load())/float64(c.commits.Load()), "ops/commit")
	b.ReportMetric(float64(c.commitNanos.Load()/1000)/float64(c.commits.Load()), "us/commit")
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}
