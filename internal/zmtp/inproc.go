package zmtp

import (
	"sync/atomic"
	"time"
)

// inprocLink carries messages between two sockets of one process without
// encoding: a send copies the frames into the peer's inbox.
type inprocLink struct {
	peer     *Socket
	peerPipe *pipe  // The pipe the peer knows us by.
	id       []byte // Our routing id at the peer (ROUTER peers).
	other    *inprocLink
	dead     atomic.Bool
}

// pairInproc connects socket a's connecting pipe pa to the bound socket b.
func pairInproc(a *Socket, pa *pipe, b *Socket) {
	pb := &pipe{}
	ab := &inprocLink{peer: b, peerPipe: pb}
	ba := &inprocLink{peer: a, peerPipe: pa}
	ab.other, ba.other = ba, ab
	if b.typ == Router {
		ab.id = a.opts.Identity
		if len(ab.id) == 0 {
			ab.id = b.generatedID()
		}
	}
	if a.typ == Router {
		ba.id = b.opts.Identity
		if len(ba.id) == 0 {
			ba.id = a.generatedID()
		}
	}
	// Each side learns of its link through its own inbox, like a network
	// connection's attach, and counts it once the attach is queued.
	a.in.pushCtl(item{kind: itemAttach, p: pa, l: ab, topic: ba.id})
	b.in.pushCtl(item{kind: itemAttach, p: pb, l: ba, topic: ab.id})
	a.stats.active.Add(1)
	b.stats.active.Add(1)
}

func (l *inprocLink) send(s *Socket, msg [][]byte) sendResult {
	if l.dead.Load() {
		return sendGone
	}
	m := msg
	if len(l.id) > 0 || l.peer.typ == Router {
		m = make([][]byte, 0, len(msg)+1)
		m = append(m, l.id)
		m = append(m, msg...)
	}
	cp := copyMsg(m)
	if l.peer.typ == Pub {
		return sent
	}
	if !l.peer.in.offer(item{kind: itemMsg, p: l.peerPipe, msg: cp}) {
		return sendFull
	}
	return sent
}

func (l *inprocLink) subscribe(s *Socket, topic []byte, on bool) {
	if l.dead.Load() {
		return
	}
	kind := itemSub
	if !on {
		kind = itemCancel
	}
	l.peer.in.pushCtl(item{kind: kind, p: l.peerPipe, topic: append([]byte(nil), topic...)})
}

func (l *inprocLink) close() {
	for _, x := range []*inprocLink{l, l.other} {
		if x.dead.CompareAndSwap(false, true) {
			// x delivers into x.peer: x.peer loses the link x.other.
			x.peer.stats.active.Add(-1)
			x.peer.in.pushCtl(item{kind: itemDetach, p: x.peerPipe, l: x.other})
		}
	}
}

func (l *inprocLink) linger(time.Duration) { l.close() }
