package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/majordomo-go/majordomo/client"
	"github.com/majordomo-go/majordomo/titanic"
)

// load keeps clients submitting "count" requests, each with a fresh id,
// through titanic.request, one after another per client, and records the
// acknowledged ones (request id -> UUID).
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nextID atomic.Int64
	sent   atomic.Int64
	mu     sync.Mutex
	acked  map[string]string
}

func startLoad(t *testing.T, clients []*client.Client) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, acked: make(map[string]string)}
	for _, c := range clients {
		l.wg.Go(func() {
			for ctx.Err() == nil {
				id := "r" + strconv.FormatInt(l.nextID.Add(1), 10)
				l.sent.Add(1)
				rep, err := c.Request(ctx, titanic.ServiceRequest, []byte("count"), []byte(id))
				if err != nil {
					continue // Killed mid-request: unacknowledged, maybe stored.
				}
				if len(rep) == 2 && string(rep[0]) == "200" {
					l.mu.Lock()
					l.acked[id] = string(rep[1])
					l.mu.Unlock()
				} else {
					t.Errorf("titanic.request: %q", rep)
				}
			}
		})
	}
	return l
}

// count is how many submissions were acknowledged so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked waits until n submissions are acknowledged; ch exiting first,
// or 60 s passing, fails the test.
func (l *load) waitAcked(t *testing.T, n int, ch *child) {
	t.Helper()
	start := time.Now()
	for l.count() < n {
		if ch.exited() {
			t.Fatalf("mdtitanic exited: %v\n%s", ch.err, ch.stderr)
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d submissions acknowledged in 60s", l.count())
		}
		time.Sleep(time.Millisecond)
	}
}

// stop ends the load and waits for its clients; acked is final after it.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// ids returns the acknowledged request ids.
func (l *load) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	return ids
}

// collectReplies asks titanic.reply for every id of acked through clients
// (each takes every len(clients)-th id) until each answers 200, as a 9/TSP
// client polls, and returns the replies by request id. A status other than
// 200 or 300 (pending) fails the test, and so does an id without its reply
// after 60 s.
func collectReplies(t *testing.T, clients []*client.Client, acked map[string]string, ids []string) map[string][]string {
	t.Helper()
	replies := make(map[string][]string, len(ids))
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(60 * time.Second)
	for i, c := range clients {
		wg.Go(func() {
			for j := i; j < len(ids); j += len(clients) {
				id, uuid := ids[j], acked[ids[j]]
				for {
					rep, err := c.Request(context.Background(), titanic.ServiceReply, []byte(uuid))
					if err != nil && !errors.Is(err, client.ErrTimeout) {
						t.Errorf("titanic.reply: %v", err)
						return
					}
					if err == nil && string(rep[0]) == "200" {
						mu.Lock()
						replies[id] = strs(rep[1:])
						mu.Unlock()
						break
					}
					if err == nil && string(rep[0]) != "300" {
						t.Errorf("request %s (UUID %s), acknowledged: titanic.reply says %q", id, uuid, rep)
						return
					}
					if time.Now().After(deadline) {
						t.Errorf("request %s (UUID %s): no reply within 60s", id, uuid)
						return
					}
					time.Sleep(5 * time.Millisecond) // Polling, as a 9/TSP client does.
				}
			}
		})
	}
	wg.Wait()
	return replies
}
