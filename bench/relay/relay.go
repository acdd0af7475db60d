package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// The wire format: every frame is a 4-byte big-endian length followed by
// that many bytes of payload; the payload's first byte is its type.
const (
	typeHelloClient = 'c' // client → relay, first frame of a client connection.
	typeHelloWorker = 'w' // worker → relay, first frame of a worker connection.
	typeRequest     = 'r' // client → relay: 'r' body. relay → worker and back: 'r' id(4) body. relay → client: 'r' body.
	typeCPU         = 'u' // client → relay: 'u'. relay → client: 'u' cpu-µs(8), the relay process's user+system time.

	// maxFrame bounds a frame's payload: checked before any buffer grows.
	maxFrame = 16 << 20
	// readBuf is each connection's initial read buffer: one read takes as
	// many frames as the kernel has.
	readBuf = 64 << 10
	// drainMax bounds the events the dispatcher handles between flushes.
	drainMax = 256
	// maxPending bounds the output a peer that does not read may hold:
	// beyond it the relay drops the connection rather than block or grow.
	maxPending = 64 << 20
)

// errFrame reports a frame the relay refuses (too large, empty, unknown
// type, or out of place); the connection is closed.
var errFrame = errors.New("bad frame")

// conn is one accepted connection. Only the dispatcher touches role, out,
// busy and dead after the connection's hello.
type conn struct {
	id    uint32
	nc    net.Conn
	role  byte // 0 until the hello, then typeHelloClient or typeHelloWorker.
	out   []byte
	dirty bool
	busy  bool // a worker holding a request.
	dead  bool

	rc   syscall.RawConn
	gone chan struct{} // closed when the reader ends.
	wsig chan struct{}
	wmu  sync.Mutex
	// What the kernel did not take at once, for the writer goroutine;
	// writing is true while the writer owns the connection's output.
	pending []byte
	writing bool
}

// event is what a reader goroutine hands the dispatcher: the complete
// frames of one read (payloads in one slab owned by the dispatcher from
// then on), or the end of the connection.
type event struct {
	c      *conn
	msgs   [][]byte
	closed bool
}

type queued struct {
	client uint32
	body   []byte
}

// server is the relay: the broker's shape without ZeroMQ. One reader
// goroutine per connection parses frames and hands them in batches to one
// dispatch goroutine, which owns all state, routes requests to idle
// workers (each holds one request, like a Majordomo worker), queues them
// when none is idle, routes replies back to their client, and writes each
// connection's outbound buffer once per batch.
type server struct {
	events  chan event
	done    <-chan struct{}
	readers sync.WaitGroup

	mu    sync.Mutex // guards conns for shutdown and nextID for accept.
	conns map[*conn]struct{}
	next  uint32

	clients map[uint32]*conn
	idle    []*conn
	queue   []queued
	head    int
	dirty   []*conn
}

// serve runs the relay on ln until ctx ends, then closes every connection
// and returns once all its goroutines have ended.
func serve(ctx context.Context, ln net.Listener) error {
	s := &server{
		events:  make(chan event, 1024),
		done:    ctx.Done(),
		conns:   map[*conn]struct{}{},
		clients: map[uint32]*conn{},
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	accepted := make(chan struct{})
	var acceptErr error
	go func() {
		defer close(accepted)
		for {
			nc, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil {
					acceptErr = err
				}
				return
			}
			sc, ok := nc.(syscall.Conn)
			if !ok {
				nc.Close()
				continue
			}
			rc, err := sc.SyscallConn()
			if err != nil {
				nc.Close()
				continue
			}
			s.mu.Lock()
			s.next++
			c := &conn{id: s.next, nc: nc, rc: rc, gone: make(chan struct{}), wsig: make(chan struct{}, 1)}
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.readers.Add(2)
			go s.read(c)
			go s.writer(c)
		}
	}()
	s.dispatch()
	ln.Close()
	<-accepted
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.readers.Wait()
	return acceptErr
}

// read is a connection's reader: every complete frame of each read goes to
// the dispatcher in one event.
func (s *server) read(c *conn) {
	defer s.readers.Done()
	defer close(c.gone)
	buf := make([]byte, readBuf)
	n := 0
	for {
		m, rerr := c.nc.Read(buf[n:])
		n += m
		var msgs [][]byte
		off, need := 0, 0
		var ferr error
		for n-off >= 4 {
			l := binary.BigEndian.Uint32(buf[off:])
			if l == 0 || l > maxFrame {
				ferr = errFrame
				break
			}
			if n-off-4 < int(l) {
				need = 4 + int(l)
				break
			}
			msgs = append(msgs, buf[off+4:off+4+int(l)])
			off += 4 + int(l)
		}
		if len(msgs) > 0 {
			// One copy per read: the dispatcher owns the slab and buf is
			// reused for the next read.
			slab := make([]byte, off)
			copy(slab, buf[:off])
			base := 0
			for i, p := range msgs {
				base += 4
				msgs[i] = slab[base : base+len(p)]
				base += len(p)
			}
			if !s.send(event{c: c, msgs: msgs}) {
				return
			}
		}
		n = copy(buf, buf[off:n])
		if need > len(buf) {
			// need is at most 4+maxFrame, checked above.
			nb := make([]byte, need)
			copy(nb, buf[:n])
			buf = nb
		}
		if ferr != nil || rerr != nil {
			c.nc.Close()
			s.send(event{c: c, closed: true})
			return
		}
	}
}

func (s *server) send(ev event) bool {
	select {
	case s.events <- ev:
		return true
	case <-s.done:
		return false
	}
}

// dispatch is the relay's one owner goroutine.
func (s *server) dispatch() {
	for {
		select {
		case ev := <-s.events:
			s.handle(ev)
		case <-s.done:
			return
		}
	drain:
		for i := 0; i < drainMax; i++ {
			select {
			case ev := <-s.events:
				s.handle(ev)
			default:
				break drain
			}
		}
		s.flush()
	}
}

func (s *server) handle(ev event) {
	c := ev.c
	if ev.closed {
		s.drop(c)
		return
	}
	for _, p := range ev.msgs {
		if c.dead {
			return
		}
		if err := s.message(c, p); err != nil {
			c.nc.Close() // The reader sees the error and reports the close.
			s.drop(c)
			return
		}
	}
}

func (s *server) message(c *conn, p []byte) error {
	switch {
	case c.role == 0 && len(p) == 1 && p[0] == typeHelloClient:
		c.role = typeHelloClient
		s.clients[c.id] = c
	case c.role == 0 && len(p) == 1 && p[0] == typeHelloWorker:
		c.role = typeHelloWorker
		s.workerIdle(c)
	case c.role == typeHelloClient && p[0] == typeRequest:
		body := p[1:]
		if w := s.popIdle(); w != nil {
			s.toWorker(w, c.id, body)
		} else {
			s.queue = append(s.queue, queued{client: c.id, body: body})
		}
	case c.role == typeHelloClient && len(p) == 1 && p[0] == typeCPU:
		var b [1 + 8]byte
		b[0] = typeCPU
		binary.BigEndian.PutUint64(b[1:], uint64(selfCPU()))
		s.write(c, b[:])
	case c.role == typeHelloWorker && c.busy && p[0] == typeRequest && len(p) >= 5:
		c.busy = false
		if cl := s.clients[binary.BigEndian.Uint32(p[1:])]; cl != nil {
			p[4] = typeRequest // 'r' body, in place: the slab is ours.
			s.write(cl, p[4:])
		}
		s.workerIdle(c)
	default:
		return errFrame
	}
	return nil
}

// workerIdle gives w the oldest queued request, or marks it idle.
func (s *server) workerIdle(w *conn) {
	for s.head < len(s.queue) {
		q := s.queue[s.head]
		s.queue[s.head] = queued{}
		s.head++
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
		}
		if s.clients[q.client] != nil {
			s.toWorker(w, q.client, q.body)
			return
		}
	}
	s.idle = append(s.idle, w)
}

func (s *server) popIdle() *conn {
	if len(s.idle) == 0 {
		return nil
	}
	w := s.idle[len(s.idle)-1]
	s.idle = s.idle[:len(s.idle)-1]
	return w
}

func (s *server) toWorker(w *conn, client uint32, body []byte) {
	w.busy = true
	w.out = binary.BigEndian.AppendUint32(w.out, uint32(1+4+len(body)))
	w.out = append(w.out, typeRequest)
	w.out = binary.BigEndian.AppendUint32(w.out, client)
	w.out = append(w.out, body...)
	s.mark(w)
}

// write appends one frame with payload p to c's outbound buffer.
func (s *server) write(c *conn, p []byte) {
	c.out = binary.BigEndian.AppendUint32(c.out, uint32(len(p)))
	c.out = append(c.out, p...)
	s.mark(c)
}

func (s *server) mark(c *conn) {
	if !c.dirty {
		c.dirty = true
		s.dirty = append(s.dirty, c)
	}
}

// flush writes every connection written to in this batch, once, without
// blocking: what the kernel does not take goes to the connection's writer
// goroutine (the engine's design: the owner never waits on a socket).
func (s *server) flush() {
	for i, c := range s.dirty {
		s.dirty[i] = nil
		c.dirty = false
		if !c.dead && !s.output(c) {
			c.nc.Close()
			s.drop(c)
		}
		if cap(c.out) > 1<<20 {
			c.out = nil // Do not keep a burst's buffer forever.
		} else {
			c.out = c.out[:0]
		}
	}
	s.dirty = s.dirty[:0]
}

// output writes c.out or hands it to the writer; false: drop c.
func (s *server) output(c *conn) bool {
	c.wmu.Lock()
	if c.writing {
		if len(c.pending)+len(c.out) > maxPending {
			c.wmu.Unlock()
			return false
		}
		c.pending = append(c.pending, c.out...)
		c.wmu.Unlock()
		return true
	}
	c.wmu.Unlock()
	n, err := tryWrite(c.rc, c.out)
	if err != nil {
		return false
	}
	if n < len(c.out) {
		c.wmu.Lock()
		c.writing = true
		c.pending = append(c.pending[:0], c.out[n:]...)
		c.wmu.Unlock()
		select {
		case c.wsig <- struct{}{}:
		default:
		}
	}
	return true
}

// tryWrite writes as much of b as the kernel takes now.
func tryWrite(rc syscall.RawConn, b []byte) (int, error) {
	n := 0
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			k, err := syscall.Write(int(fd), b[n:])
			if k > 0 {
				n += k
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true
			case err != nil:
				werr = err
				return true
			case k == 0:
				return true
			}
		}
		return true // Never wait for writability here.
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// writer writes, blocking, what flush could not.
func (s *server) writer(c *conn) {
	defer s.readers.Done()
	for {
		select {
		case <-c.wsig:
		case <-c.gone:
			return
		case <-s.done:
			return
		}
		for {
			c.wmu.Lock()
			b := c.pending
			c.pending = nil
			if len(b) == 0 {
				c.writing = false
				c.wmu.Unlock()
				break
			}
			c.wmu.Unlock()
			if _, err := c.nc.Write(b); err != nil {
				c.nc.Close() // The reader reports the close.
				return
			}
		}
	}
}

// drop forgets a connection; a request its worker held is lost (the
// benchmark's workers do not leave mid-run).
func (s *server) drop(c *conn) {
	if c.dead {
		return
	}
	c.dead = true
	switch c.role {
	case typeHelloClient:
		delete(s.clients, c.id)
	case typeHelloWorker:
		for i, w := range s.idle {
			if w == c {
				s.idle = append(s.idle[:i], s.idle[i+1:]...)
				break
			}
		}
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// selfCPU is this process's user+system CPU time in microseconds.
func selfCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
}

// readFrame reads one frame's payload into buf (grown if needed, bounded
// by maxFrame), for the peers.
func readFrame(r io.Reader, hdr []byte, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return buf, err
	}
	l := binary.BigEndian.Uint32(hdr)
	if l == 0 || l > maxFrame {
		return buf, errFrame
	}
	if int(l) > cap(buf) {
		buf = make([]byte, l)
	}
	buf = buf[:l]
	_, err := io.ReadFull(r, buf)
	return buf, err
}
