package dispatch

import (
	"fmt"
	"testing"
	"time"
)

// The steady-state paths of both protocols must not allocate: these are
// run once per request.

// mdpCycle is one 7/MDP request with an idle worker: the job goes straight
// to the least recently used worker, whose reply refills its slot.
func mdpCycle(p *tpool, q *Queue[*tjob, string], j *tjob, client []byte) {
	w, _ := p.Submit(q, client, j, 64, t0)
	p.Credit(w, 1)
	p.Next(w, t0) // Nothing waiting: returns at once.
}

// queuedCycle is a request that waits: queued, then taken by the worker
// whose slot comes back.
func queuedCycle(p *tpool, q *Queue[*tjob, string], w *tworker, j *tjob, client []byte) {
	p.Submit(q, client, j, 64, t0)
	p.Credit(w, 1)
	p.Next(w, t0)
}

func setupMDP(workers int) (*tpool, *Queue[*tjob, string], []*tworker) {
	p := NewPool[*tjob, string](Config{Limits: Limits{MaxLen: 10000, Budget: &Budget{Max: 1 << 30}}})
	q, _ := p.Ensure("echo")
	var ws []*tworker
	for i := 0; i < workers; i++ {
		w, _ := p.Join(fmt.Sprint("w", i), []Sub{{Queue: "echo"}})
		p.Credit(w, 1)
		ws = append(ws, w)
	}
	return p, q, ws
}

func TestZeroAllocSteadyState(t *testing.T) {
	p, q, ws := setupMDP(8)
	j := &tjob{1}
	client := []byte("client-1")
	for i := 0; i < 100; i++ {
		mdpCycle(p, q, j, client)
	}
	if a := testing.AllocsPerRun(1000, func() { mdpCycle(p, q, j, client) }); a != 0 {
		t.Errorf("direct dispatch: %v allocations, want 0", a)
	}

	// Every worker busy, jobs from several clients wait and are served.
	for _, w := range ws {
		p.SetSlots(w, 0)
	}
	clients := [][]byte{[]byte("a"), []byte("b"), []byte("c")}
	i := 0
	cycle := func() {
		queuedCycle(p, q, ws[i%len(ws)], j, clients[i%len(clients)])
		i++
	}
	// Keep a backlog so that the fair ring and lanes are exercised.
	for k := 0; k < 30; k++ {
		p.Submit(q, clients[k%3], j, 64, t0)
	}
	for k := 0; k < 100; k++ {
		cycle()
	}
	if a := testing.AllocsPerRun(1000, cycle); a != 0 {
		t.Errorf("queued dispatch: %v allocations, want 0", a)
	}

	// eMQP: a job manager with weighted queues and several slots.
	ep := NewPool[*tjob, string](Config{})
	jm, _ := ep.Join("jm", []Sub{{Queue: "a", Weight: 30}, {Queue: "b", Weight: 10}})
	qa, qb := ep.Queue("a"), ep.Queue("b")
	for k := 0; k < 50; k++ {
		ep.Submit(qa, clients[0], j, 1, t0)
		ep.Submit(qb, clients[1], j, 1, t0)
	}
	weighted := func() {
		ep.Credit(jm, 2)
		_, q1, _ := ep.Next(jm, t0)
		_, q2, _ := ep.Next(jm, t0)
		ep.Submit(q1, clients[0], j, 1, t0)
		ep.Submit(q2, clients[1], j, 1, t0)
	}
	for k := 0; k < 100; k++ {
		weighted()
	}
	if a := testing.AllocsPerRun(1000, weighted); a != 0 {
		t.Errorf("weighted dispatch: %v allocations, want 0", a)
	}
}

func BenchmarkDispatchDirect(b *testing.B) {
	p, q, _ := setupMDP(64)
	j := &tjob{1}
	client := []byte("client")
	b.ReportAllocs()
	for b.Loop() {
		mdpCycle(p, q, j, client)
	}
}

func BenchmarkDispatchQueued(b *testing.B) {
	p, q, ws := setupMDP(64)
	for _, w := range ws {
		p.SetSlots(w, 0)
	}
	j := &tjob{1}
	clients := make([][]byte, 100)
	for i := range clients {
		clients[i] = []byte(fmt.Sprint("client-", i))
		for k := 0; k < 10; k++ {
			p.Submit(q, clients[i], j, 64, t0)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		queuedCycle(p, q, ws[i%len(ws)], j, clients[i%len(clients)])
		i++
	}
}

func BenchmarkWeightedNext(b *testing.B) {
	p := NewPool[*tjob, string](Config{})
	var subs []Sub
	for i := 0; i < 8; i++ {
		subs = append(subs, Sub{Queue: fmt.Sprint("q", i), Weight: 10 * (i + 1)})
	}
	jm, _ := p.Join("jm", subs)
	j := &tjob{1}
	client := []byte("c")
	for _, s := range subs {
		q := p.Queue(s.Queue)
		for k := 0; k < 100; k++ {
			p.Submit(q, client, j, 1, t0)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Credit(jm, 1)
		_, q, _ := p.Next(jm, t0)
		p.Submit(q, client, j, 1, t0)
	}
}

func BenchmarkExpireScan(b *testing.B) {
	p, q, ws := setupMDP(1)
	p.SetSlots(ws[0], 0)
	j := &tjob{1}
	for i := 0; i < 10000; i++ {
		p.Submit(q, []byte{byte(i % 50)}, j, 1, t0.Add(time.Hour))
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Expire(t0, nil) // Nothing old enough: a full scan that keeps all.
	}
}
