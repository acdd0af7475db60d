package zmtp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/majordomo-go/majordomo/internal/zmtp/wire"
)

// errMsgTooLarge: a message's frames add up to more than the socket
// accepts in one message.
var errMsgTooLarge = fmt.Errorf("%w: message", wire.ErrTooLarge)

// readLoop reads until the connection or the socket ends. socketClosed
// reports the latter (the inbox refused a batch).
func (c *conn) readLoop() (socketClosed bool, err error) {
	o := &c.s.opts
	maxFrame := uint64(o.MaxMsgSize)
	maxMsg := 4 * o.MaxMsgSize
	if maxMsg < 64<<20 {
		maxMsg = 64 << 20
	}
	var (
		cur      [][]byte
		curBytes int64
		dropped  int
		batch    []item
		ctl      int
	)
	router := c.s.typ == Router
	startMsg := func() {
		if router && cur == nil {
			cur = append(make([][]byte, 0, 4), c.id)
		}
	}
	// frame handles one frame body (after decryption); more is its MORE
	// bit. It returns an error that ends the connection.
	frame := func(more bool, body []byte) error {
		if c.s.typ == Pub {
			// A 3.0 SUB peer subscribes with messages: 0x01 or 0x00, then
			// the topic (23/ZMTP "The Publish-Subscribe Pattern").
			if !more && len(body) > 0 && (body[0] == 1 || body[0] == 0) {
				kind := itemSub
				if body[0] == 0 {
					kind = itemCancel
				}
				batch = append(batch, item{kind: kind, p: c.p, topic: append([]byte(nil), body[1:]...)})
				ctl++
			}
			return nil
		}
		startMsg()
		curBytes += int64(len(body))
		if curBytes > maxMsg {
			return errMsgTooLarge
		}
		if len(cur) < o.MaxFrames+btoi(router) {
			if cur == nil {
				cur = make([][]byte, 0, 4)
			}
			cur = append(cur, body)
		} else {
			dropped++
		}
		if !more {
			batch = append(batch, item{kind: itemMsg, p: c.p, msg: cur, dropped: dropped, uid: c.uid})
			cur, curBytes, dropped = nil, 0, 0
		}
		return nil
	}
	handle := func(flags byte, body []byte) error {
		if c.cipher != nil {
			// libzmq 4.3 sends CURVE MESSAGE in message frames: every frame
			// after the handshake is a box, whatever its flags; ZMTP 3.1
			// commands travel inside with the inner COMMAND bit.
			inner, plain, err := c.cipher.Open(body)
			if err != nil {
				return err
			}
			if inner&0x02 == 0 {
				return frame(inner&0x01 != 0, plain)
			}
			body = plain
		} else if flags&wire.FlagCommand == 0 {
			return frame(flags&wire.FlagMore != 0, body)
		}
		n, k, err := c.command(body)
		if n != nil {
			batch = append(batch, *n)
			ctl += k
		}
		return err
	}

	// consume cuts every complete frame in the buffer, hands the whole
	// messages over, and reports whether the next frame is too large for
	// the buffer (it then takes the large-frame path with the header left
	// in lflags, lsize and lhdr).
	var (
		lflags byte
		lsize  uint64
		lhdr   int
	)
	consume := func() (large bool, err error) {
		// First find where the complete frames end, then copy them all into
		// one new slab, so that the messages of one read share one
		// allocation and the buffer is reused.
		end, err := c.completeFrames(maxFrame)
		if err != nil {
			return false, err
		}
		if end > c.r {
			slab := make([]byte, end-c.r)
			copy(slab, c.buf[c.r:end])
			c.r = end
			for off := 0; off < len(slab); {
				flags, size, hdr, _ := wire.ParseFrameHeader(slab[off:], 0)
				body := slab[off+hdr : off+hdr+int(size) : off+hdr+int(size)]
				off += hdr + int(size)
				if err := handle(flags, body); err != nil {
					return false, err
				}
			}
		}
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		// Hand over what is complete before anything that may block.
		if len(batch) > 0 {
			if !c.s.in.push(batch, ctl) {
				return false, errSocketClosed
			}
			clear(batch)
			batch, ctl = batch[:0], 0
		}
		lflags, lsize, lhdr, _ = wire.ParseFrameHeader(c.buf[c.r:c.w], maxFrame)
		return lhdr > 0 && lhdr+int(lsize) > maxReadBuf, nil
	}

	for {
		large, err := consume()
		if err == errSocketClosed {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		// A frame too large for the buffer is read into its own buffer,
		// which grows as its octets arrive: a peer that announces a large
		// frame (within MaxMsgSize) and sends little makes us hold little.
		if large {
			body, err := c.readLarge(int(lsize), c.buf[c.r+lhdr:c.w])
			c.r, c.w = 0, 0
			if err != nil {
				return false, err
			}
			if err := handle(lflags, body); err != nil {
				return false, err
			}
			continue
		}
		if err := c.readMore(consume); err == errSocketClosed {
			return true, nil
		} else if err != nil {
			return false, err
		}
	}
}

// errSocketClosed: the socket closed while a reader handed messages over.
var errSocketClosed = errors.New("zmtp: socket closed")

// readLarge reads a frame body of size octets, of which have are already
// buffered, into a buffer that doubles as octets arrive (from 1 MiB).
func (c *conn) readLarge(size int, have []byte) ([]byte, error) {
	body := make([]byte, len(have), min(size, max(1<<20, len(have))))
	copy(body, have)
	for len(body) < size {
		if len(body) == cap(body) {
			nb := make([]byte, len(body), min(size, 2*cap(body)))
			copy(nb, body)
			body = nb
		}
		n, err := c.read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if n > 0 {
			c.lastRecv.Store(time.Now().UnixNano())
		}
		if err != nil && len(body) < size {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return body, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// completeFrames returns the offset where the last complete frame in the
// buffer ends, checking every header on the way.
func (c *conn) completeFrames(max uint64) (int, error) {
	off := c.r
	for {
		_, size, hdr, err := wire.ParseFrameHeader(c.buf[off:c.w], max)
		if err != nil {
			return 0, err
		}
		if hdr == 0 || uint64(c.w-off-hdr) < size {
			return off, nil
		}
		off += hdr + int(size)
	}
}

// readMore reads into the buffer at least once, compacting or growing it
// first. When the kernel gave less than there was room for, the socket had
// nothing more: consume then handles what arrived and the reader waits for
// the next readiness event without the read that would return EAGAIN (see
// rawio.go). It returns when consume wants the reader's loop (a large
// frame, an error) or the buffer filled.
func (c *conn) readMore(consume func() (bool, error)) error {
	if err := c.makeRoom(); err != nil {
		return err
	}
	if c.rc == nil {
		n, err := c.read(c.buf[c.w:])
		if n > 0 {
			c.got(n)
			return nil
		}
		if err == nil {
			return io.ErrNoProgress
		}
		return err
	}
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno := rawRead(fd, c.buf[c.w:])
		switch {
		case errno == syscall.EAGAIN:
			return false
		case errno != 0:
			rerr = errno
			return true
		case n == 0:
			rerr = io.EOF
			return true
		}
		full := c.w+n == len(c.buf)
		now := c.got(n)
		if full {
			return true
		}
		large, err := consume()
		if err == nil && !large {
			err = c.makeRoom()
		}
		if err != nil || large {
			rerr = err
			return true
		}
		// Wait for the next event: RawConn.Read calls us again then.
		c.armEOFCheck(now)
		return false
	})
	if err != nil {
		if c.eofCheck != 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			// Nothing arrived since a short read: read once more, to see
			// an end of stream that arrived with the last data.
			c.clearEOFCheck()
			return nil
		}
		return err
	}
	return rerr
}

// eofCheckAfter is how long after its last short read an idle connection
// reads once more. A peer's FIN or RST that arrived together with its last
// data raises no readiness event after our read of that data (the event
// was consumed before it), and only a further read reports it.
const eofCheckAfter = 50 * time.Millisecond

// armEOFCheck makes sure that the reader's wait ends within about
// eofCheckAfter of now. The deadline is moved only when it is within half
// of that of now: a busy connection moves it once per 25 ms, not per read.
func (c *conn) armEOFCheck(now int64) {
	if c.eofCheck-now >= int64(eofCheckAfter/2) {
		return
	}
	c.eofCheck = now + int64(eofCheckAfter)
	c.nc.SetReadDeadline(time.Unix(0, c.eofCheck))
}

// clearEOFCheck removes the deadline armEOFCheck set; read calls it, since
// its reads wait for as long as it takes.
func (c *conn) clearEOFCheck() {
	if c.eofCheck != 0 {
		c.eofCheck = 0
		c.nc.SetReadDeadline(time.Time{})
	}
}

// got records n octets read into the buffer, doubles a buffer the read
// filled (more is likely waiting), and returns the time of the read.
func (c *conn) got(n int) int64 {
	c.w += n
	now := time.Now().UnixNano()
	c.lastRecv.Store(now)
	if c.w == len(c.buf) && len(c.buf) < maxReadBuf {
		c.grow(2 * len(c.buf))
	}
	return now
}

// grow replaces the buffer with one of size octets holding the same
// unread octets.
func (c *conn) grow(size int) {
	nb := make([]byte, size)
	copy(nb, c.buf[:c.w])
	c.buf = nb
}

// makeRoom compacts or grows the buffer so that a read has room.
func (c *conn) makeRoom() error {
	if c.r > 0 && (c.w == len(c.buf) || c.r > len(c.buf)/2) {
		copy(c.buf, c.buf[c.r:c.w])
		c.w -= c.r
		c.r = 0
	}
	if c.w == len(c.buf) {
		if len(c.buf) >= maxReadBuf {
			// Cannot happen: a frame larger than the buffer takes the
			// large-frame path. Guard against a loop anyway.
			return fmt.Errorf("zmtp: read buffer full")
		}
		c.grow(2 * len(c.buf))
	}
	return nil
}

// command handles a ZMTP command after the handshake. It may return an
// item for the owner (subscriptions) and its control count.
func (c *conn) command(body []byte) (*item, int, error) {
	name, data, err := wire.ParseCommand(body)
	if err != nil {
		return nil, 0, err
	}
	switch name {
	case "PING":
		p, err := wire.ParsePing(data)
		if err != nil {
			return nil, 0, err
		}
		c.queueCommand(func(dst []byte) []byte { return appendCmd(c, dst, "PONG", p.Context) })
		if p.TTL > 0 {
			c.armTTL(time.Duration(p.TTL) * 100 * time.Millisecond)
		}
	case "PONG":
		c.s.stats.pongs.Add(1)
	case "ERROR":
		return nil, 0, errPeerError
	case "SUBSCRIBE", "CANCEL":
		if c.s.typ != Pub {
			return nil, 0, nil
		}
		kind := itemSub
		if name == "CANCEL" {
			kind = itemCancel
		}
		return &item{kind: kind, p: c.p, topic: append([]byte(nil), data...)}, 1, nil
	}
	// Other commands are ignored, as libzmq does.
	return nil, 0, nil
}

// appendCmd appends a command frame, inside MESSAGE on a CURVE connection.
// c.mu must be held.
func appendCmd(c *conn, dst []byte, name string, data []byte) []byte {
	if c.cipher == nil {
		return wire.AppendCommand(dst, name, data)
	}
	body := append([]byte{byte(len(name))}, name...)
	body = append(body, data...)
	out, err := c.cipher.Seal(dst, 0x02, body)
	if err != nil {
		return dst
	}
	return out
}

// armTTL closes the connection if nothing arrives within ttl (37/ZMTP: a
// PING's TTL "provides a strong hint to the other peer to disconnect if no
// further traffic is received after that time").
func (c *conn) armTTL(ttl time.Duration) {
	if t := c.ttlTimer.Load(); t != nil {
		t.Reset(ttl)
		return
	}
	t := time.AfterFunc(ttl, func() {
		idle := time.Since(time.Unix(0, c.lastRecv.Load()))
		if idle >= ttl {
			c.close()
			return
		}
		if t := c.ttlTimer.Load(); t != nil {
			t.Reset(ttl - idle)
		}
	})
	c.ttlTimer.Store(t)
}

// heartbeat sends PING every interval and closes a connection silent for
// HeartbeatTimeout (37/ZMTP "Connection Heartbeating").
func (c *conn) heartbeat() {
	o := &c.s.opts
	t := time.NewTicker(o.HeartbeatInterval)
	defer t.Stop()
	ttl := uint16(min(o.HeartbeatTTL/(100*time.Millisecond), 0xFFFF))
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, c.lastRecv.Load())) > o.HeartbeatTimeout {
			c.close()
			return
		}
		c.queueCommand(func(dst []byte) []byte {
			if c.cipher == nil {
				return wire.AppendPing(dst, wire.Ping{TTL: ttl})
			}
			return appendCmd(c, dst, "PING", []byte{byte(ttl >> 8), byte(ttl)})
		})
	}
}

// queueCommand appends a command from a goroutine other than the owner and
// makes sure the writer sends it.
func (c *conn) queueCommand(app func([]byte) []byte) {
	c.mu.Lock()
	// With output already waiting behind a write in progress, the peer
	// gets traffic as soon as it reads: one more PING or PONG adds nothing,
	// and a peer that floods PINGs without reading must not grow out.
	if c.dead || c.writing && len(c.out) > 0 {
		c.mu.Unlock()
		return
	}
	c.out = app(c.out)
	if !c.writing {
		c.writing = true
		signal(c.wsig)
	}
	c.mu.Unlock()
}

// send queues one message (owner goroutine), unless the peer is at the
// high-water mark or the connection is closing.
func (c *conn) send(s *Socket, msg [][]byte) sendResult {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return sendGone
	}
	if c.outMsgs+c.wMsgs >= s.opts.SendHWM {
		c.mu.Unlock()
		return sendFull
	}
	if !c.encode(msg) {
		c.mu.Unlock()
		return sendGone
	}
	c.outMsgs++
	c.mu.Unlock()
	s.markDirty(c)
	return sent
}

// sendPending sends messages that waited for this connection, from the
// connection's goroutine: encoded here, written by the writer.
func (c *conn) sendPending(msgs [][][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	for _, msg := range msgs {
		if !c.encode(msg) {
			return
		}
		c.outMsgs++
	}
	if !c.writing {
		c.writing = true
		signal(c.wsig)
	}
}

// encode appends one message's frames to out; c.mu must be held. false:
// the cipher failed and the connection is closing.
func (c *conn) encode(msg [][]byte) bool {
	for i, f := range msg {
		var flags byte
		if i < len(msg)-1 {
			flags = wire.FlagMore
		}
		if c.cipher != nil {
			out, err := c.cipher.Seal(c.out, flags, f)
			if err != nil {
				go c.close()
				return false
			}
			c.out = out
			continue
		}
		c.out = wire.AppendFrameHeader(c.out, flags, len(f))
		c.out = append(c.out, f...)
	}
	return true
}

// subscribe sends a SUBSCRIBE or CANCEL: a command to a 3.1 peer, a
// message with a leading 1 or 0 to a 3.0 peer.
func (c *conn) subscribe(s *Socket, topic []byte, on bool) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if c.minor >= 1 {
		name := "SUBSCRIBE"
		if !on {
			name = "CANCEL"
		}
		c.out = appendCmd(c, c.out, name, topic)
	} else {
		body := append([]byte{btob(on)}, topic...)
		if c.cipher != nil {
			if out, err := c.cipher.Seal(c.out, 0, body); err == nil {
				c.out = out
			}
		} else {
			c.out = append(wire.AppendFrameHeader(c.out, 0, len(body)), body...)
		}
	}
	c.mu.Unlock()
	s.markDirty(c)
}

func btob(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// flush writes out on the owner goroutine without blocking; what the
// kernel does not take goes to the writer goroutine.
func (c *conn) flush() {
	c.mu.Lock()
	if c.writing || c.dead || len(c.out) == 0 {
		c.mu.Unlock()
		return
	}
	buf, msgs := c.out, c.outMsgs
	c.out, c.spare, c.outMsgs = c.spare[:0], nil, 0
	c.writing = true
	c.mu.Unlock()
	n := c.tryWrite(buf)
	c.s.stats.flushes.Add(1)
	c.mu.Lock()
	if n == len(buf) {
		c.writing = false
		if cap(buf) <= spareLimit {
			c.spare = buf[:0]
		}
		if len(c.out) > 0 {
			// A PONG arrived meanwhile; let the writer send it.
			c.writing = true
			signal(c.wsig)
		}
	} else {
		c.wbuf, c.wOrg, c.wMsgs = buf[n:], buf, msgs
		signal(c.wsig)
	}
	c.mu.Unlock()
}

// tryWrite writes as much of buf as the kernel takes now.
func (c *conn) tryWrite(buf []byte) int {
	if c.rc == nil {
		return 0
	}
	n := 0
	c.rc.Write(func(fd uintptr) bool {
		n = rawWrite(fd, buf)
		return true // Never wait: the writer goroutine does that.
	})
	return n
}

// writeLoop writes what the owner could not, and commands queued by the
// reader or the heartbeat.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case <-c.wsig:
		case <-c.closing:
			return
		}
		for {
			c.mu.Lock()
			if c.wbuf == nil {
				if len(c.out) == 0 || c.dead {
					c.writing = false
					lingering := c.lingering
					c.mu.Unlock()
					if lingering {
						c.close()
						return
					}
					break
				}
				c.wbuf, c.wOrg, c.wMsgs = c.out, c.out, c.outMsgs
				c.out, c.spare, c.outMsgs = c.spare[:0], nil, 0
			}
			buf := c.wbuf
			c.mu.Unlock()
			_, err := c.nc.Write(buf)
			c.s.stats.flushes.Add(1)
			if err != nil {
				c.close()
				return
			}
			c.mu.Lock()
			if cap(c.wOrg) <= spareLimit {
				c.spare = c.wOrg[:0]
			}
			c.wbuf, c.wOrg, c.wMsgs = nil, nil, 0
			c.mu.Unlock()
			signal(c.s.space)
		}
	}
}

// linger flushes for up to d, then closes; d <= 0 closes at once.
func (c *conn) linger(d time.Duration) {
	if d <= 0 {
		c.close()
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(d))
	c.mu.Lock()
	c.lingering = true
	idle := !c.writing
	if idle && len(c.out) > 0 {
		c.writing, idle = true, false
		signal(c.wsig)
	}
	c.mu.Unlock()
	if idle {
		c.close()
	}
}
