package titanic

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/majordomo-go/majordomo/internal/pgtest"
)

// TestPGLeases: a submission is leased to the store that made it; others
// cannot claim it while the lease is renewed, can once it runs out or is
// released, and the first reply stored wins whoever holds the lease.
func TestPGLeases(t *testing.T) {
	url := pgtest.Start(t).NewDatabase()
	ttl := 300 * time.Millisecond
	a := openPG(t, url, PGOptions{Owner: "A", LeaseTTL: ttl})
	b := openPG(t, url, PGOptions{Owner: "B", LeaseTTL: ttl})
	var g idGen
	x, y := g.next(time.Now()), g.next(time.Now())
	commit(t, a, &Op{Kind: OpSubmit, ID: x, Service: "s", Body: [][]byte{[]byte("x")}, Time: time.Now()},
		&Op{Kind: OpSubmit, ID: y, Service: "s", Body: [][]byte{[]byte("y")}, Time: time.Now()})
	if c, err := b.Claim(10); err != nil || len(c) != 0 {
		t.Fatalf("B claimed %v %v while A holds the leases", c, err)
	}
	// A renews for longer than the TTL: B still gets nothing.
	for range 4 {
		time.Sleep(ttl / 3)
		kept, err := a.Renew([]ID{x, y})
		if err != nil || len(kept) != 2 {
			t.Fatalf("A renew: %v %v", kept, err)
		}
		if c, err := b.Claim(10); err != nil || len(c) != 0 {
			t.Fatalf("B claimed %v %v while A renews", c, err)
		}
	}
	// A stops renewing (as if it died): B takes both over, oldest first.
	var got []Claimed
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		c, err := b.Claim(10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c...)
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 2 || got[0].ID != x || got[1].ID != y || got[0].Service != "s" {
		t.Fatalf("B claimed %v, want x and y", got)
	}
	// A learns it lost them.
	if kept, err := a.Renew([]ID{x, y}); err != nil || len(kept) != 0 {
		t.Fatalf("A renew after takeover: %v %v", kept, err)
	}
	// A's late reply to x still counts (it is the first); B's does not
	// replace it.
	ra := &Op{Kind: OpReply, ID: x, Body: [][]byte{[]byte("from A")}, Time: time.Now()}
	commit(t, a, ra)
	rb := &Op{Kind: OpReply, ID: x, Body: [][]byte{[]byte("from B")}, Time: time.Now()}
	commit(t, b, rb)
	if !ra.Applied || rb.Applied {
		t.Fatalf("applied A %v B %v", ra.Applied, rb.Applied)
	}
	if e, _ := b.Get(x); string(e.Reply[0]) != "from A" {
		t.Fatalf("reply %q", e.Reply)
	}
	// B renews y and keeps it; a replied request is not renewed.
	if kept, err := b.Renew([]ID{x, y}); err != nil || len(kept) != 1 || kept[0] != y {
		t.Fatalf("B renew: %v %v", kept, err)
	}
	// B releases: A can claim y at once.
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	if c, err := a.Claim(10); err != nil || len(c) != 1 || c[0].ID != y {
		t.Fatalf("A claim after release: %v %v", c, err)
	}
}

// TestPGClaimConcurrent: several stores claiming at once never get the same
// request (FOR UPDATE SKIP LOCKED), and together get them all.
func TestPGClaimConcurrent(t *testing.T) {
	url := pgtest.Start(t).NewDatabase()
	owner := openPG(t, url, PGOptions{Owner: "gone", LeaseTTL: time.Millisecond})
	var g idGen
	const n = 2000
	var ops []*Op
	for range n {
		ops = append(ops, &Op{Kind: OpSubmit, ID: g.next(time.Now()), Service: "s", Body: [][]byte{{}}, Time: time.Now()})
	}
	commit(t, owner, ops...)
	time.Sleep(10 * time.Millisecond) // The 1ms leases run out.
	var mu sync.Mutex
	seen := make(map[ID]string)
	var wg sync.WaitGroup
	for i := range 4 {
		s := openPG(t, url, PGOptions{Owner: string(rune('a' + i))})
		wg.Go(func() {
			for {
				c, err := s.Claim(37)
				if err != nil {
					t.Error(err)
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, cl := range c {
					if prev, dup := seen[cl.ID]; dup {
						t.Errorf("%s claimed by %s and %s", cl.ID, prev, s.Owner())
					}
					seen[cl.ID] = s.Owner()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
}

// TestPGSchema: the schema is created once with its version recorded,
// opening again migrates nothing, and a newer schema is refused.
func TestPGSchema(t *testing.T) {
	url := pgtest.Start(t).NewDatabase()
	// Several servers starting at once: the advisory lock serialises them.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := OpenPostgres(context.Background(), url, PGOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions []int
	rows, _ := conn.Query(ctx, "SELECT version FROM titanic_schema_version ORDER BY version")
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(versions) != 1 || versions[0] != pgSchemaVersion {
		t.Fatalf("versions %v %v, want [%d]", versions, err, pgSchemaVersion)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO titanic_schema_version (version) VALUES (99)"); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenPostgres(ctx, url, PGOptions{}); err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: %v", err)
	}
}

// TestPGOpenErrors: a bad URL or an unreachable server fails Open with an
// error that names the server and never shows the password.
func TestPGOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"postgres://titanic:s3cret@127.0.0.1:1/db?connect_timeout=2",
		"postgres://titanic:s3cret@127.0.0.1:1/db?sslmode=bogus",
		"postgres://titanic:s3cret@[::1/db",
	} {
		s, err := OpenPostgres(ctx, u, PGOptions{Timeout: 2 * time.Second})
		if err == nil {
			s.Close()
			t.Errorf("%s: opened", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
		t.Logf("%v", err)
	}
	if got := RedactURL("postgres://u:pw@h/db?password=pw2"); strings.Contains(got, "pw") {
		t.Errorf("RedactURL: %s", got)
	}
}
