package dispatch

import "time"

// Liveness is what a protocol records about one peer for heartbeating:
// when it last heard from the peer and when it last sent it anything, or a
// heartbeat in particular. The zero value is "never".
type Liveness struct {
	LastHeard time.Time // Anything received from the peer.
	LastSent  time.Time // Anything sent to the peer.
	LastBeat  time.Time // The last HEARTBEAT sent to the peer.
}

// Heard records traffic from the peer. Every protocol here counts any
// command but a goodbye as a heartbeat.
func (l *Liveness) Heard(now time.Time) { l.LastHeard = now }

// Sent records a message sent to the peer.
func (l *Liveness) Sent(now time.Time) { l.LastSent = now }

// Beat records a heartbeat sent to the peer.
func (l *Liveness) Beat(now time.Time) {
	l.LastBeat = now
	l.LastSent = now
}

// Heartbeats is a heartbeat policy: how often peers are sent a heartbeat,
// and how long one may stay silent before it counts as dead.
type Heartbeats struct {
	// Interval between heartbeats to a peer.
	Interval time.Duration
	// Timeout is the silence after which a peer is dead: 7/MDP's
	// liveness × interval, eMQP's HEARTBEAT_TIMEOUT (5 s).
	Timeout time.Duration
	// SendsCount makes anything sent to a peer count as a heartbeat: a
	// peer is beaten only when it has been sent nothing for an interval
	// (7/MDP: any command acts as a heartbeat). Off, every peer is beaten
	// every interval whatever else it is sent, as EventMQ's router does
	// (its job managers check their worker processes on each router
	// HEARTBEAT).
	SendsCount bool
}

// Tick is how often a loop should run its housekeeping so that heartbeats
// and expiry are accurate to a fraction of the interval: a quarter of the
// interval, at most 250 ms.
func (h Heartbeats) Tick() time.Duration {
	return min(h.Interval/4, 250*time.Millisecond)
}

// Due reports whether the peer should be sent a heartbeat now. It allows
// one Tick of slack, so that a peer checked a moment before its interval is
// up is not left for a whole extra tick.
func (h Heartbeats) Due(l *Liveness, now time.Time) bool {
	last := l.LastBeat
	if h.SendsCount {
		last = l.LastSent
	}
	return !now.Before(last.Add(h.Interval - h.Tick()))
}

// Dead reports whether the peer has been silent for Timeout or longer.
func (h Heartbeats) Dead(l *Liveness, now time.Time) bool {
	return now.Sub(l.LastHeard) >= h.Timeout
}

// Ticker is a loop's periodic timer: it says when housekeeping is due and
// how long the loop may sleep meanwhile. It never allocates and never
// fires twice for one period, however late the loop comes back.
type Ticker struct {
	Period time.Duration
	next   time.Time
}

// Start arms the ticker for its first period from now.
func (t *Ticker) Start(now time.Time) { t.next = now.Add(t.Period) }

// Due reports whether a period has passed and, if so, starts the next.
func (t *Ticker) Due(now time.Time) bool {
	if now.Before(t.next) {
		return false
	}
	t.next = now.Add(t.Period)
	return true
}

// Until returns how long until the ticker is due, at least 0.
func (t *Ticker) Until(now time.Time) time.Duration {
	return max(t.next.Sub(now), 0)
}
