package zmtp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp/mech"
	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// Read buffer sizes: a connection starts small, so that thousands of idle
// ones cost little, and grows while reads fill it.
const (
	minReadBuf = 4 << 10
	maxReadBuf = 64 << 10
	// maxHandshakeCommand bounds a command during the handshake (metadata
	// of INITIATE and READY included).
	maxHandshakeCommand = 1 << 20
	// spareLimit: a written buffer larger than this is not kept for reuse.
	spareLimit = 1 << 20
)

// conn is one TCP or IPC connection of a socket. Its reader goroutine does
// the handshake, then reads, cuts frames and hands whole messages to the
// owner in batches. The owner appends sends to out and, at the end of its
// batch, writes them itself without blocking; only a remainder the kernel
// would not take goes to the writer goroutine.
type conn struct {
	s      *Socket
	p      *pipe
	nc     net.Conn
	rc     syscall.RawConn // nil: every write goes through the writer.
	sec    Security
	addr   string // Peer address for authentication ("" for ipc).
	id     []byte // Routing id the owner knows this peer by (ROUTER).
	uid    string
	minor  byte // Peer's ZMTP minor version: 0 for 3.0, 1 for 3.1+.
	cipher mech.Cipher

	// Reader goroutine only.
	buf  []byte
	r, w int

	// Output, guarded by mu.
	mu         sync.Mutex
	out        []byte // Being appended.
	outMsgs    int
	wbuf, wOrg []byte // Being written by the writer goroutine.
	wMsgs      int
	spare      []byte
	writing    bool // A write is in progress or handed to the writer.
	dead       bool
	lingering  bool

	dirty bool // Owner only: in the socket's dirty list.

	wsig       chan struct{}
	closing    chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	lastRecv   atomic.Int64
	eofCheck   int64 // Reader only: the read deadline armed by readMore (ns), 0: none.
	ttlTimer   atomic.Pointer[time.Timer]
}

func newConn(s *Socket, nc net.Conn, p *pipe, sec Security) *conn {
	c := &conn{
		s: s, p: p, nc: nc, sec: sec,
		wsig: make(chan struct{}, 1), closing: make(chan struct{}), writerDone: make(chan struct{}),
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.addr = ta.IP.String()
	}
	return c
}

// run serves the connection until it ends; it reports whether the
// handshake completed (a dialer resets its backoff then).
func (c *conn) run() bool {
	if !c.s.track(c) {
		c.nc.Close()
		return false
	}
	defer c.s.untrack(c)
	if err := c.handshake(); err != nil {
		if errors.Is(err, mech.ErrRefused) {
			c.s.stats.authRefused.Add(1)
		} else if errors.Is(err, mech.ErrPeerError) {
			c.s.stats.peerRefused.Add(1)
		} else {
			c.s.stats.handshakeFailed.Add(1)
		}
		c.close()
		close(c.writerDone)
		return false
	}
	c.lastRecv.Store(time.Now().UnixNano())
	go c.writeLoop()
	if c.s.opts.HeartbeatInterval > 0 && c.minor >= 1 {
		go c.heartbeat()
	}
	if c.p.connecting {
		c.p.attachLive(c, c.sendPending)
		defer c.p.detachLive(c)
	}
	c.s.in.pushCtl(item{kind: itemAttach, p: c.p, l: c, topic: c.id})
	// Counted once the owner can learn of it: a caller that waits for
	// Connections and then sends finds the peer routable.
	c.s.stats.active.Add(1)
	defer c.s.stats.active.Add(-1)
	socketClosed, err := c.readLoop()
	if socketClosed {
		// The socket closed: let the writer linger, then close.
		<-c.writerDone
	} else {
		if errors.Is(err, wire.ErrTooLarge) {
			c.s.stats.tooLarge.Add(1)
		} else if err != nil && !isEOF(err) {
			c.s.stats.protocolErrors.Add(1)
		}
		c.s.stats.disconnected.Add(1)
		c.s.in.pushCtl(item{kind: itemDetach, p: c.p, l: c})
	}
	c.close()
	<-c.writerDone
	if t := c.ttlTimer.Load(); t != nil {
		t.Stop()
	}
	return true
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errPeerError) || errors.Is(err, syscall.EPIPE)
}

var errPeerError = errors.New("zmtp: peer sent ERROR")

// close ends the connection at once; unsent output is lost.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		close(c.closing)
		c.nc.Close()
	})
}

// handshake exchanges greetings and runs the security mechanism
// (23/ZMTP "Connection Heartbeating"... and "The greeting"). The whole
// exchange is bounded by HandshakeTimeout.
func (c *conn) handshake() error {
	o := &c.s.opts
	c.nc.SetDeadline(time.Now().Add(o.HandshakeTimeout))
	mechName := c.sec.Mechanism
	if mechName == "" {
		mechName = mech.Null
	}
	// 37/ZMTP "Version Negotiation": we send the whole greeting at once and
	// expect a whole one (the second case); ZMTP 1.0 and 2.0 peers are not
	// served.
	asServer := c.sec.Server && mechName != mech.Null
	g := wire.Greeting{Major: 3, Minor: 1, Mechanism: mechName, AsServer: asServer}
	if _, err := c.nc.Write(g.Append(nil)); err != nil {
		return err
	}
	c.buf = make([]byte, minReadBuf)
	// Judge the peer as soon as its octets allow (37/ZMTP "Version
	// Negotiation"): a first octet other than 0xFF is ZMTP 1.0 or not ZMTP,
	// and a 2.0 peer sends 11 octets and waits. Neither is served, and
	// neither would complete a greeting before the deadline.
	if err := c.fill(1); err != nil {
		c.greetingClosed(err)
		return err
	}
	if c.buf[c.r] != 0xFF {
		return wire.ErrSignature
	}
	if err := c.fill(11); err != nil {
		c.greetingClosed(err)
		return err
	}
	if !wire.SignatureOK(c.buf[c.r:c.w]) {
		return wire.ErrSignature
	}
	if c.buf[c.r+10] < 3 {
		return wire.ErrVersion
	}
	if err := c.fill(wire.GreetingSize); err != nil {
		c.greetingClosed(err)
		return err
	}
	pg, err := wire.ParseGreeting(c.buf[c.r : c.r+wire.GreetingSize])
	if err != nil {
		return err
	}
	c.r += wire.GreetingSize
	// 23/ZMTP: "If the mechanism that the peer received does not exactly
	// match the mechanism it sent, it MUST close the connection."
	if pg.Mechanism != mechName {
		if f := c.sec.MechanismMismatch; f != nil {
			f(c.addr, pg.Mechanism)
		}
		return fmt.Errorf("zmtp: peer mechanism %q, ours %q", pg.Mechanism, mechName)
	}
	// The peer's as-server octet is not checked: libzmq 4.3 sends 0 even
	// from a PLAIN or CURVE server (and ignores the octet itself), so a
	// check would refuse every libzmq server. Two peers of the same role
	// fail in the mechanism's handshake instead.
	c.minor = 1
	if pg.Major == 3 && pg.Minor == 0 {
		c.minor = 0
	}
	local := mech.Metadata{{Name: "Socket-Type", Value: []byte(c.s.typ.String())}}
	if c.s.typ == Router || c.s.typ == Dealer || c.s.typ == Req {
		local = append(local, mech.Property{Name: "Identity", Value: c.s.opts.Identity})
	}
	auth := c.sec.Auth
	if auth == nil {
		auth = c.s.ctx.authenticator()
	}
	res, err := mech.Handshake(hsConn{c}, &mech.Config{
		Mechanism: mechName, Server: c.sec.Server,
		PublicKey: c.sec.PublicKey, SecretKey: c.sec.SecretKey, ServerKey: c.sec.ServerKey,
		Username: c.sec.Username, Password: c.sec.Password,
		Domain: c.sec.Domain, Auth: auth, PeerAddress: c.addr, Local: local,
	})
	if err != nil {
		return err
	}
	st, _ := res.Peer.Get("Socket-Type")
	if !c.s.typ.compatible(string(st)) {
		return fmt.Errorf("zmtp: %s socket cannot talk to a %q peer", c.s.typ, st)
	}
	c.cipher = res.Cipher
	c.uid = res.UserID
	if c.s.typ == Router {
		id, _ := res.Peer.Get("Identity")
		if len(id) == 0 || len(id) > 255 {
			id = c.s.generatedID()
		} else {
			id = append([]byte(nil), id...)
		}
		c.id = id
	}
	c.nc.SetDeadline(time.Time{})
	return nil
}

// greetingClosed reports a peer that closed during the greeting. libzmq
// reads our whole greeting, finds that our mechanism is not its own and
// closes, often before any of its own greeting is out: such a close most
// likely means another mechanism. Reported with the mechanism unknown.
func (c *conn) greetingClosed(err error) {
	if f := c.sec.MechanismMismatch; f != nil && isEOF(err) {
		f(c.addr, "")
	}
}

// fill reads until the buffer holds at least n unread bytes.
func (c *conn) fill(n int) error {
	if c.w-c.r >= n {
		return nil
	}
	if c.r > 0 {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
	}
	for c.w < n {
		if c.w == len(c.buf) {
			// Grow as the octets arrive, not to the size a header claims:
			// a peer in its handshake must send a megabyte to make us hold
			// one.
			c.grow(min(max(2*len(c.buf), minReadBuf), n))
		}
		k, err := c.read(c.buf[c.w:])
		c.w += k
		if err != nil && c.w < n {
			return err
		}
	}
	return nil
}

// hsConn gives the mechanisms whole commands during the handshake.
type hsConn struct{ c *conn }

func (h hsConn) ReadCommand() (string, []byte, error) {
	c := h.c
	if err := c.fill(2); err != nil {
		return "", nil, err
	}
	flags, size, hdr, err := wire.ParseFrameHeader(c.buf[c.r:c.w], maxHandshakeCommand)
	if err == nil && hdr == 0 {
		if err = c.fill(9); err == nil {
			flags, size, hdr, err = wire.ParseFrameHeader(c.buf[c.r:c.w], maxHandshakeCommand)
		}
	}
	if err != nil {
		return "", nil, err
	}
	if flags&wire.FlagCommand == 0 {
		return "", nil, fmt.Errorf("zmtp: message frame during the handshake")
	}
	if err := c.fill(hdr + int(size)); err != nil {
		return "", nil, err
	}
	body := c.buf[c.r+hdr : c.r+hdr+int(size)]
	c.r += hdr + int(size)
	// mech.ParseCommand also reads libzmq's malformed PLAIN ERROR.
	name, data, err := mech.ParseCommand(body)
	if err != nil {
		return "", nil, err
	}
	return name, append([]byte(nil), data...), nil
}

// WriteRawCommand lets a PLAIN server send ERROR in the form libzmq's PLAIN
// clients recognise (see mech.RawCommandWriter).
func (h hsConn) WriteRawCommand(body []byte) error {
	b := wire.AppendFrameHeader(nil, wire.FlagCommand, len(body))
	_, err := h.c.nc.Write(append(b, body...))
	return err
}

func (h hsConn) WriteCommand(name string, data []byte) error {
	_, err := h.c.nc.Write(wire.AppendCommand(nil, name, data))
	return err
}
