package zmtp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// endpoint is a parsed "transport://address".
type endpoint struct {
	transport string // "tcp", "ipc" or "inproc".
	addr      string // host:port, a path (leading @: abstract) or a name.
}

// parseEndpoint accepts tcp://HOST:PORT (HOST may be *, an IPv4 or a
// bracketed IPv6 address, or a name to connect to), ipc://PATH (a leading @
// is Linux's abstract namespace) and inproc://NAME.
func parseEndpoint(s string, bind bool) (endpoint, error) {
	tr, addr, ok := strings.Cut(s, "://")
	if !ok || addr == "" {
		return endpoint{}, fmt.Errorf("%w %q: want transport://address", ErrEndpoint, s)
	}
	switch tr {
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return endpoint{}, fmt.Errorf("%w %q: %v", ErrEndpoint, s, err)
		}
		if port == "*" {
			if !bind {
				return endpoint{}, fmt.Errorf("%w %q: a wildcard port can only be bound", ErrEndpoint, s)
			}
			port = "0"
		}
		if host == "*" {
			if !bind {
				return endpoint{}, fmt.Errorf("%w %q: connect needs a host", ErrEndpoint, s)
			}
			host = ""
		}
		return endpoint{"tcp", net.JoinHostPort(host, port)}, nil
	case "ipc":
		if len(addr) > 107 {
			return endpoint{}, fmt.Errorf("%w %q: ipc path longer than 107 bytes", ErrEndpoint, s)
		}
		return endpoint{"ipc", addr}, nil
	case "inproc":
		return endpoint{"inproc", addr}, nil
	}
	return endpoint{}, fmt.Errorf("%w %q: unknown transport %q (tcp, ipc and inproc are supported)", ErrEndpoint, s, tr)
}

// CheckEndpoint reports whether Bind (bind) or Connect would accept ep, so
// that configuration is checked by the rule the engine applies.
func CheckEndpoint(ep string, bind bool) error {
	_, err := parseEndpoint(ep, bind)
	return err
}

// netAddr is the address net.Listen and net.Dial take: abstract unix
// names start with a zero byte there.
func (e endpoint) network() (string, string) {
	if e.transport == "ipc" {
		if strings.HasPrefix(e.addr, "@") {
			return "unix", "\x00" + e.addr[1:]
		}
		return "unix", e.addr
	}
	return "tcp", e.addr
}

// Bind listens on an endpoint and returns the endpoint actually bound
// (with the port the kernel chose for tcp://HOST:* or :0).
func (s *Socket) Bind(ep string) (string, error) {
	if s.closed {
		return "", ErrClosed
	}
	e, err := parseEndpoint(ep, true)
	if err != nil {
		return "", err
	}
	if e.transport == "inproc" {
		if err := s.ctx.bindInproc(e.addr, s); err != nil {
			return "", err
		}
		s.mu.Lock()
		s.inprocs = append(s.inprocs, e.addr)
		s.mu.Unlock()
		return ep, nil
	}
	network, addr := e.network()
	ln, err := net.Listen(network, addr)
	if err != nil {
		return "", fmt.Errorf("zmtp: bind %s: %w", ep, err)
	}
	bound := ep
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		bound = "tcp://" + net.JoinHostPort(ta.IP.String(), fmt.Sprint(ta.Port))
		if strings.HasPrefix(e.addr, ":") {
			bound = "tcp://0.0.0.0:" + fmt.Sprint(ta.Port)
		}
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	sec := s.sec
	go s.accept(ln, sec)
	return bound, nil
}

// accept serves one listener until it is closed.
func (s *Socket) accept(ln net.Listener, sec Security) {
	delay := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			// EMFILE and friends: back off rather than spin.
			time.Sleep(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		s.stats.accepted.Add(1)
		// Connections still in their handshake count: otherwise half-open
		// peers would get round the cap until their deadline.
		if s.stats.open.Add(1) > int64(s.opts.MaxConnections) {
			s.stats.open.Add(-1)
			if s.stats.refusedConn.Add(1) == 1 && s.log != nil {
				s.log.Warn("connection limit reached: closing new connections", "limit", s.opts.MaxConnections,
					"endpoint", ln.Addr().String())
			}
			nc.Close()
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		c := newConn(s, nc, &pipe{}, sec)
		go func() {
			c.run()
			s.stats.open.Add(-1)
		}()
	}
}

// dialer keeps one connected endpoint connected, reconnecting with a
// doubling backoff.
type dialer struct {
	s      *Socket
	e      endpoint
	p      *pipe
	sec    Security
	cancel context.CancelFunc
	ctx    context.Context
}

// Connect connects to an endpoint, now and again after every disconnection.
// Messages sent before the connection is up wait for it (unless Immediate).
func (s *Socket) Connect(ep string) error {
	if s.closed {
		return ErrClosed
	}
	e, err := parseEndpoint(ep, false)
	if err != nil {
		return err
	}
	p := &pipe{connecting: true, listed: true}
	s.pipes = append(s.pipes, p)
	if e.transport == "inproc" {
		return s.ctx.connectInproc(e.addr, s, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &dialer{s: s, e: e, p: p, sec: s.sec, ctx: ctx, cancel: cancel}
	s.mu.Lock()
	s.dialers = append(s.dialers, d)
	s.mu.Unlock()
	go d.run()
	return nil
}

func (d *dialer) stop() { d.cancel() }

func (d *dialer) run() {
	o := &d.s.opts
	backoff := o.ReconnectInterval
	network, addr := d.e.network()
	var nd net.Dialer
	for {
		nc, err := nd.DialContext(d.ctx, network, addr)
		if err == nil {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			c := newConn(d.s, nc, d.p, d.sec)
			if c.run() {
				backoff = o.ReconnectInterval
			}
		}
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, o.ReconnectIntervalMax)
	}
}
