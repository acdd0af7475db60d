package main

import (
	"context"
	"errors"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/internal/pgtest"
	"github.com/majordomo-go/majordomo/internal/testutil/harness"
	mdworker "github.com/majordomo-go/majordomo/worker"
)

// TestTitanicInBroker runs the real binary with --titanic-dir: a request
// submitted through titanic.request reaches a worker and its reply can be
// fetched, and SIGTERM still exits 0.
func TestTitanicInBroker(t *testing.T) {
	dir := t.TempDir()
	p := startProc(t, nil, "--endpoint", "tcp://127.0.0.1:*", "--titanic-dir", dir, "--heartbeat", "100ms")
	p.waitLog("titanic started")
	m := p.waitLog(`broker started.*endpoints=\[(tcp://[0-9.:]+)\]`)
	ep := m[1]

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	harness.RunWorker(t, ep, "echo", mdworker.HandlerFunc(harness.Echo), mdworker.WithHeartbeat(100*time.Millisecond))

	c, err := client.Connect(ep, client.WithTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tt := &client.Titanic{Client: c}
	reply, err := tt.Request(ctx, "echo", []byte("durable"))
	if err != nil {
		t.Fatalf("titanic request: %v; logs:\n%s", err, p.logs.String())
	}
	if len(reply) != 1 || string(reply[0]) != "durable" {
		t.Fatalf("reply %q", reply)
	}
	if !regexp.MustCompile(`titanic`).MatchString(p.logs.String()) {
		t.Fatal("no titanic log")
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
	}
}

// TestTitanicStoreShared runs two real mdbroker processes whose built-in
// Titanic shares one PostgreSQL database (set by flag on one, by
// MDBROKER_TITANIC_STORE on the other): a request accepted through broker
// A, with its worker on A, is answered through broker B.
func TestTitanicStoreShared(t *testing.T) {
	url := pgtest.Start(t).NewDatabase()
	a := startProc(t, nil, "--endpoint", "tcp://127.0.0.1:*", "--titanic-store", url, "--heartbeat", "100ms")
	b := startProc(t, []string{"MDBROKER_TITANIC_STORE=" + url}, "--endpoint", "tcp://127.0.0.1:*", "--heartbeat", "100ms")
	var eps []string
	for _, p := range []*proc{a, b} {
		p.waitLog(`titanic started.*store="?postgres://`)
		eps = append(eps, p.waitLog(`broker started.*endpoints=\[(tcp://[0-9.:]+)\]`)[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	harness.RunWorker(t, eps[0], "echo", mdworker.HandlerFunc(harness.Echo), mdworker.WithHeartbeat(100*time.Millisecond))

	var clients []*client.Client
	for _, ep := range eps {
		c, err := client.Connect(ep, client.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	id, err := (&client.Titanic{Client: clients[0]}).Submit(ctx, "echo", []byte("shared"))
	if err != nil {
		t.Fatalf("submit through A: %v; logs:\n%s", err, a.logs.String())
	}
	var reply [][]byte
	for {
		reply, err = (&client.Titanic{Client: clients[1]}).Reply(ctx, id)
		if !errors.Is(err, client.ErrTitanicPending) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || len(reply) != 1 || string(reply[0]) != "shared" {
		t.Fatalf("reply through B: %q %v; logs:\n%s", reply, err, b.logs.String())
	}
	for _, p := range []*proc{a, b} {
		p.signal(syscall.SIGTERM)
		if code := p.wait(15 * time.Second); code != 0 {
			t.Fatalf("exit %d; logs:\n%s", code, p.logs.String())
		}
	}
}
