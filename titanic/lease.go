package titanic

import (
	"context"
	"time"
)

// Leases, for a SharedStore (several Titanic servers on one database).
//
// Each server's dispatcher works only on requests leased to it: those it
// accepted itself (OpSubmit leases them to it) and those it claimed after
// their holder's lease ran out or was released. The leaser goroutine, every
// LeaseTTL/3 (see claimEvery):
//
//  1. asks the run goroutine for the IDs it holds (every item, whatever its
//     state) and renews their leases in one statement. The IDs the store did
//     not renew were taken over by another server (this one was cut off for
//     longer than the TTL), answered, closed or expired elsewhere: they are
//     dropped, except an attempt in flight, which finishes and may store its
//     reply (the first reply stored wins) but is not retried here.
//  2. claims requests whose lease ran out, in batches of claimBatch, and
//     queues them; their bodies are read from the store when sent.
//
// A renewal that fails (database unreachable) changes nothing at once; but
// leases are only known valid until LeaseTTL after the start of the last
// renewal that succeeded, and past that the dispatcher sends nothing new
// (leased reports false) until a renewal succeeds again: another server may
// own those requests by then. Each stored request is thus sent by one
// server at a time, except after a pause longer than the TTL (a process
// stopped, a network cut) where an attempt already in flight may overlap
// with the new holder's: delivery stays at-least-once, and the reply is
// stored once.

// claimBatch is how many requests one Claim takes; a round claims up to
// claimRounds batches. Rounds come every claimEvery (more often with a TTL
// under 3s), so that requests released by a server that stopped are taken
// over within about a second; leases are renewed every LeaseTTL/3.
const (
	claimBatch  = 512
	claimRounds = 8
	claimEvery  = time.Second
)

// leased reports whether this server's leases are known to be valid at now
// (always, for a store of its own).
func (d *dispatcher) leased(now time.Time) bool {
	return d.shared == nil || now.Before(d.leaseUntil)
}

func (d *dispatcher) leaser(ctx context.Context) {
	renewEvery := max(d.shared.LeaseTTL()/3, time.Millisecond)
	t := time.NewTimer(0)
	defer t.Stop()
	var renewed time.Time
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		renew := time.Since(renewed) >= renewEvery
		if d.leaseRound(ctx, renew) && renew {
			renewed = time.Now()
		}
		t.Reset(min(claimEvery, renewEvery))
	}
}

// leaseRound renews (if renew) and claims; it reports whether the renewal
// succeeded.
func (d *dispatcher) leaseRound(ctx context.Context, renew bool) bool {
	if renew && !d.renew(ctx) {
		return false
	}
	st := d.shared
	for range claimRounds {
		if ctx.Err() != nil {
			return true
		}
		c, err := st.Claim(claimBatch)
		if err != nil {
			d.leaseError("claim", err)
			return true
		}
		if len(c) > 0 {
			d.post(event{kind: evClaimed, claimed: c})
		}
		if len(c) < claimBatch {
			return true
		}
	}
	return true
}

func (d *dispatcher) renew(ctx context.Context) bool {
	st := d.shared
	snap := make(chan []ID, 1)
	d.post(event{kind: evLeaseSnap, snap: snap})
	var held []ID
	select {
	case held = <-snap:
	case <-ctx.Done():
		return false
	}
	start := time.Now()
	kept, err := st.Renew(held)
	if err != nil {
		d.leaseError("renew", err)
		return false
	}
	d.post(event{kind: evRenewed, held: held, kept: kept, validUntil: start.Add(st.LeaseTTL())})
	return true
}

func (d *dispatcher) leaseError(what string, err error) {
	d.srv.stats.storeErrors.Add(1)
	if n, ok := d.srv.errLog.Allow(time.Now()); ok {
		d.srv.log.Error("titanic: cannot "+what+" leases; retrying", "error", err.Error(), "suppressed", n)
	}
}

// handleLease handles the leaser's events in the run goroutine.
func (d *dispatcher) handleLease(ev *event) {
	switch ev.kind {
	case evLeaseSnap:
		ids := make([]ID, 0, len(d.items))
		for id := range d.items {
			ids = append(ids, id)
		}
		ev.snap <- ids
	case evRenewed:
		if ev.validUntil.After(d.leaseUntil) {
			d.leaseUntil = ev.validUntil
		}
		if len(ev.kept) == len(ev.held) {
			return
		}
		kept := make(map[ID]struct{}, len(ev.kept))
		for _, id := range ev.kept {
			kept[id] = struct{}{}
		}
		for _, id := range ev.held {
			if _, ok := kept[id]; ok {
				continue
			}
			it := d.items[id]
			if it == nil {
				continue
			}
			switch it.state {
			case stQueued, stDelayed:
				d.srv.stats.leasesLost.Add(1)
				d.drop(it)
			case stInFlight:
				d.srv.stats.leasesLost.Add(1)
				it.lost = true
			}
			// stStoring, stStoreRetry: the reply is being stored, which is
			// right whoever holds the lease now.
		}
	case evClaimed:
		for _, c := range ev.claimed {
			if _, have := d.items[c.ID]; !have {
				d.srv.stats.leasesClaimed.Add(1)
				d.enqueue(c.ID, c.Service, nil)
			}
		}
	}
}

// drop forgets it: closed, expired, or leased to another server.
func (d *dispatcher) drop(it *item) {
	it.cancelled = true
	delete(d.items, it.id)
	if s := it.svc; it.state == stQueued {
		// Closed or expired while waiting, perhaps for a service that never
		// comes: do not keep it in memory for ever.
		s.dead++
		if s.dead >= 64 && s.dead*2 >= s.queued() || s.dead == s.queued() {
			s.compact()
			d.gc(s)
		}
	}
}
