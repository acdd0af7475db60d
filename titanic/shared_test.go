package titanic_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/internal/pgtest"
	"github.com/majordomo-go/majordomo/internal/testutil"
	"github.com/majordomo-go/majordomo/titanic"
)

func pgConfig(endpoint, url string, leaseTTL time.Duration) titanic.Config {
	cfg := testConfig(endpoint, "")
	cfg.Postgres = url
	cfg.LeaseTTL = leaseTTL
	return cfg
}

// TestPostgresTwoBrokers: two brokers, a Titanic on each, one database. A
// request accepted through broker 1 is answered and closed through broker
// 2; a Titanic that stops cleanly hands its requests over at once (its
// leases are released, not left to run out).
func TestPostgresTwoBrokers(t *testing.T) {
	url := pgtest.Start(t).NewDatabase()
	ep1, ep2 := startBroker(t), startBroker(t)
	// Leases far longer than the test: a takeover here can only come from
	// the release at a clean stop.
	a := startTitanic(t, pgConfig(ep1, url, time.Minute))
	b := startTitanic(t, pgConfig(ep2, url, time.Minute))
	c1, c2 := connect(t, ep1), connect(t, ep2)

	id := submit(t, c1, "echo", "hello")
	if rep := call(t, c2, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"300"}) {
		t.Fatalf("reply through broker 2 before any worker: %q, want 300", rep)
	}
	// A holds the lease; its broker gets the worker.
	runWorker(t, ep1, "echo", echo)
	if rep := awaitReply(t, c2, id, 10*time.Second); !reflect.DeepEqual(rep, []string{"hello"}) {
		t.Fatalf("reply through broker 2: %q", rep)
	}
	if rep := call(t, c2, titanic.ServiceClose, id); rep[0] != "200" {
		t.Fatalf("close through broker 2: %q", rep)
	}
	if rep := call(t, c1, titanic.ServiceReply, id); !reflect.DeepEqual(rep, []string{"400"}) {
		t.Fatalf("reply through broker 1 after close: %q, want 400", rep)
	}

	// A request for a service that only broker 2 has: A holds it and cannot
	// dispatch it; when A stops, B takes it over.
	late := submit(t, c1, "late", "x")
	runWorker(t, ep2, "late", echo)
	time.Sleep(200 * time.Millisecond) // B must not take it while A runs.
	if rep := call(t, c2, titanic.ServiceReply, late); rep[0] != "300" {
		t.Fatalf("reply while A holds the lease: %q, want 300", rep)
	}
	if st := b.srv.Stats(); st.LeasesClaimed != 0 || st.Attempts != 0 {
		t.Fatalf("B took a request A holds: %+v", st)
	}
	a.stop()
	if rep := awaitReply(t, c2, late, 10*time.Second); !reflect.DeepEqual(rep, []string{"x"}) {
		t.Fatalf("reply after takeover: %q", rep)
	}
	if st := b.srv.Stats(); st.LeasesClaimed != 1 || st.Replied != 1 {
		t.Errorf("B stats %+v, want 1 claimed and replied", st)
	}
}

// TestPostgresDown: with the database killed, titanic.request and
// titanic.reply answer 500 while the broker keeps serving plain requests;
// when it is back, Titanic recovers by itself and the request accepted
// before the crash is dispatched and answered.
func TestPostgresDown(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.NewDatabase()
	ep := startBroker(t)
	srv := startTitanic(t, pgConfig(ep, url, time.Second))
	c := connect(t, ep)
	runWorker(t, ep, "echo", echo)
	before := submit(t, c, "later", "kept")

	pg.Kill()
	if rep := call(t, c, titanic.ServiceRequest, "echo", "y"); !reflect.DeepEqual(rep, []string{"500"}) {
		t.Fatalf("titanic.request with the database down: %q, want 500", rep)
	}
	if rep := call(t, c, titanic.ServiceReply, before); !reflect.DeepEqual(rep, []string{"500"}) {
		t.Fatalf("titanic.reply with the database down: %q, want 500", rep)
	}
	if rep := call(t, c, "echo", "plain"); !reflect.DeepEqual(rep, []string{"plain"}) {
		t.Fatalf("plain request with the database down: %q", rep)
	}
	if st := srv.srv.Stats(); st.Errors < 2 {
		t.Errorf("stats %+v, want the 500s counted", st)
	}

	pg.Restart()
	var id string
	testutil.Eventually(t, 20*time.Second, "titanic.request to recover", func() bool {
		rep := call(t, c, titanic.ServiceRequest, "echo", "again")
		if rep[0] == "200" {
			id = rep[1]
			return true
		}
		return false
	})
	if rep := awaitReply(t, c, id, 10*time.Second); !reflect.DeepEqual(rep, []string{"again"}) {
		t.Fatalf("reply after recovery: %q", rep)
	}
	runWorker(t, ep, "later", echo)
	if rep := awaitReply(t, c, before, 10*time.Second); !reflect.DeepEqual(rep, []string{"kept"}) {
		t.Fatalf("request accepted before the crash: %q", rep)
	}
}
