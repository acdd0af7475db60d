package transport

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// NewZMQ4Context returns a Context backed by a private libzmq context,
// through github.com/pebbe/zmq4.
func NewZMQ4Context() (Context, error) {
	zc, err := zmq.NewContext()
	if err != nil {
		return nil, fmt.Errorf("transport: new context: %w", mapErr(err))
	}
	// EINTR is handled explicitly by our callers (pebbe/zmq4 issue 161): an
	// automatic retry would hide a shutdown signal from a blocking loop.
	zc.SetRetryAfterEINTR(false)
	return &zmqContext{zc: zc}, nil
}

type zmqContext struct{ zc *zmq.Context }

func (c *zmqContext) Term() error {
	// pebbe's Term marks the context closed before calling zmq_ctx_term and
	// only retries EINTR itself when asked to; retrying from out here would
	// spin for ever on the saved error.
	c.zc.SetRetryAfterEINTR(true)
	return mapErr(c.zc.Term())
}

func (c *zmqContext) NewSocket(t Type, o Options) (Socket, error) {
	var zt zmq.Type
	switch t {
	case Router:
		zt = zmq.ROUTER
	case Dealer:
		zt = zmq.DEALER
	case Req:
		zt = zmq.REQ
	case Rep:
		zt = zmq.REP
	case Pair:
		zt = zmq.PAIR
	default:
		return nil, fmt.Errorf("transport: unknown socket type %d", t)
	}
	s, err := c.zc.NewSocket(zt)
	if err != nil {
		return nil, fmt.Errorf("transport: new socket: %w", mapErr(err))
	}
	if err := apply(s, t, o); err != nil {
		s.SetLinger(0)
		s.Close()
		return nil, err
	}
	z := &zmqSocket{s: s, wantUID: o.UserID}
	if o.Security != nil {
		if err := z.SetSecurity(o.Security); err != nil {
			s.SetLinger(0)
			s.Close()
			return nil, err
		}
	}
	if err := z.openFD(); err != nil {
		s.SetLinger(0)
		s.Close()
		return nil, err
	}
	return z, nil
}

func apply(s *zmq.Socket, t Type, o Options) error {
	set := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("transport: set %s: %w", name, mapErr(err))
		}
		return nil
	}
	if err := set("linger", s.SetLinger(o.Linger)); err != nil {
		return err
	}
	if len(o.Identity) > 0 {
		if err := set("identity", s.SetIdentity(string(o.Identity))); err != nil {
			return err
		}
	}
	if o.SendHWM > 0 {
		if err := set("sndhwm", s.SetSndhwm(o.SendHWM)); err != nil {
			return err
		}
	}
	if o.RecvHWM > 0 {
		if err := set("rcvhwm", s.SetRcvhwm(o.RecvHWM)); err != nil {
			return err
		}
	}
	if o.MaxMsgSize > 0 {
		if err := set("maxmsgsize", s.SetMaxmsgsize(o.MaxMsgSize)); err != nil {
			return err
		}
	}
	if o.Immediate {
		if err := set("immediate", s.SetImmediate(true)); err != nil {
			return err
		}
	}
	if o.ReconnectInterval > 0 {
		if err := set("reconnect_ivl", s.SetReconnectIvl(o.ReconnectInterval)); err != nil {
			return err
		}
	}
	if t == Router {
		if o.RouterMandatory {
			if err := set("router_mandatory", s.SetRouterMandatory(1)); err != nil {
				return err
			}
		}
		if o.RouterHandover {
			if err := set("router_handover", s.SetRouterHandover(true)); err != nil {
				return err
			}
		}
	}
	return nil
}

// zmqSocket waits for libzmq in Go's network poller rather than in a
// blocking cgo call. A goroutine blocked in cgo holds an OS thread, and the
// Go scheduler only notices after sysmon's next tick (20 µs to 10 ms), which
// on a busy or single-CPU machine costs tens of microseconds per wake-up.
// Instead every libzmq call here is non-blocking; to wait, the socket's
// ZMQ_FD (an edge-triggered "check ZMQ_EVENTS" signal) is registered with
// the runtime poller (see fdWaiter), and the goroutine parks like any
// network read.
type zmqSocket struct {
	s       *zmq.Socket
	poll    fdWaiter
	wantUID bool   // Options.UserID.
	uid     string // User-Id of the last message received.
	closed  bool
}

func (z *zmqSocket) openFD() error {
	fd, err := z.s.GetFd()
	if err != nil {
		return fmt.Errorf("transport: get ZMQ_FD: %w", mapErr(err))
	}
	return z.poll.open(fd, func() (int, error) {
		ev, err := z.s.GetEvents()
		return int(ev), mapErr(err)
	})
}

// Wake makes a concurrent or the next WaitReadable return early. It is the
// one method that any goroutine may call.
func (z *zmqSocket) Wake() { z.poll.wake() }

func (z *zmqSocket) Monitor(endpoint string) error {
	if z.closed {
		return ErrClosed
	}
	if err := z.s.Monitor(endpoint, zmq.EVENT_ACCEPTED|zmq.EVENT_DISCONNECTED); err != nil {
		return fmt.Errorf("transport: monitor %s: %w", endpoint, mapErr(err))
	}
	return nil
}

func (z *zmqSocket) Bind(endpoint string) (string, error) {
	if err := z.s.Bind(endpoint); err != nil {
		return "", fmt.Errorf("transport: bind %s: %w", endpoint, mapErr(err))
	}
	ep, err := z.s.GetLastEndpoint()
	if err != nil {
		return endpoint, nil
	}
	return ep, nil
}

func (z *zmqSocket) Connect(endpoint string) error {
	if err := z.s.Connect(endpoint); err != nil {
		return fmt.Errorf("transport: connect %s: %w", endpoint, mapErr(err))
	}
	return nil
}

func (z *zmqSocket) Send(frames [][]byte, dontwait bool) error {
	if z.closed {
		return ErrClosed
	}
	if len(frames) == 0 {
		return nil
	}
	last := len(frames) - 1
	for i, f := range frames {
		flag := zmq.DONTWAIT
		if i < last {
			flag |= zmq.SNDMORE
		}
		for {
			_, err := z.s.SendBytes(f, flag)
			if err == nil {
				break
			}
			err = mapErr(err)
			switch {
			case errors.Is(err, ErrInterrupted):
				continue
			case errors.Is(err, ErrAgain) && i > 0:
				// libzmq takes the rest of a multipart message once the
				// first frame is in; this cannot happen, but a half
				// message must never be left behind.
				continue
			case errors.Is(err, ErrAgain) && !dontwait:
				if _, err := z.poll.wait(int(zmq.POLLOUT), time.Time{}); err != nil {
					return err
				}
				continue
			}
			return err
		}
	}
	return nil
}

func (z *zmqSocket) Recv(maxFrames int, dontwait bool) ([][]byte, int, error) {
	if z.closed {
		return nil, 0, ErrClosed
	}
	var frames [][]byte
	dropped := 0
	for {
		var b []byte
		var err error
		first := len(frames) == 0 && dropped == 0
		if z.wantUID && (first || z.uid == "") {
			// A ROUTER's routing-id frame lacks metadata when libzmq
			// prefetched it for ZMQ_EVENTS: look at the frames after it
			// until one has the User-Id.
			if first {
				z.uid = ""
			}
			var md map[string]string
			b, md, err = z.s.RecvBytesWithMetadata(zmq.DONTWAIT, "User-Id")
			z.uid = md["User-Id"]
		} else {
			b, err = z.s.RecvBytes(zmq.DONTWAIT)
		}
		if err != nil {
			err = mapErr(err)
			switch {
			case errors.Is(err, ErrInterrupted):
				continue
			case errors.Is(err, ErrAgain) && (len(frames) > 0 || dropped > 0):
				// The rest of a multipart message is already here; never
				// return half of it.
				continue
			case errors.Is(err, ErrAgain) && !dontwait:
				ok, err := z.poll.wait(int(zmq.POLLIN), time.Time{})
				if err != nil {
					return nil, 0, err
				}
				if !ok {
					return nil, 0, ErrInterrupted // Woken.
				}
				continue
			}
			return nil, 0, err
		}
		if maxFrames <= 0 || len(frames) < maxFrames {
			frames = append(frames, b)
		} else {
			dropped++
		}
		more, err := z.s.GetRcvmore()
		for err != nil && errors.Is(mapErr(err), ErrInterrupted) {
			more, err = z.s.GetRcvmore()
		}
		if err != nil {
			return nil, 0, mapErr(err)
		}
		if !more {
			return frames, dropped, nil
		}
	}
}

func (z *zmqSocket) UserID() string { return z.uid }

func (z *zmqSocket) SetSecurity(sec *Security) error {
	if z.closed {
		return ErrClosed
	}
	if sec == nil {
		sec = &Security{}
	}
	if err := sec.validate(); err != nil {
		return err
	}
	set := func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("transport: set %s: %w", name, mapErr(err))
		}
		return nil
	}
	// Keys go to libzmq in Z85 (40 characters), which it accepts like the
	// 32 raw bytes and which survives pebbe's C-string conversion.
	z85 := func(k []byte) string { return zmq.Z85encode(string(k)) }
	var steps []error
	switch sec.Mechanism {
	case Null:
		steps = append(steps, set("plain_server", z.s.SetPlainServer(0)))
	case Plain:
		if sec.Server {
			steps = append(steps, set("plain_server", z.s.SetPlainServer(1)))
		} else {
			steps = append(steps, set("plain_username", z.s.SetPlainUsername(sec.Username)),
				set("plain_password", z.s.SetPlainPassword(sec.Password)))
		}
	case Curve:
		if sec.Server {
			steps = append(steps, set("curve_server", z.s.SetCurveServer(1)),
				set("curve_secretkey", z.s.SetCurveSecretkey(z85(sec.SecretKey))))
			if len(sec.PublicKey) > 0 {
				steps = append(steps, set("curve_publickey", z.s.SetCurvePublickey(z85(sec.PublicKey))))
			}
		} else {
			steps = append(steps, set("curve_serverkey", z.s.SetCurveServerkey(z85(sec.ServerKey))),
				set("curve_publickey", z.s.SetCurvePublickey(z85(sec.PublicKey))),
				set("curve_secretkey", z.s.SetCurveSecretkey(z85(sec.SecretKey))))
		}
	}
	if sec.ZAPDomain != "" {
		steps = append(steps, set("zap_domain", z.s.SetZapDomain(sec.ZAPDomain)))
	}
	return errors.Join(steps...)
}

func (z *zmqSocket) WaitReadable(timeout time.Duration) (bool, error) {
	if z.closed {
		return false, ErrClosed
	}
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	if timeout == 0 {
		ev, err := z.s.GetEvents()
		if err != nil {
			return false, mapErr(err)
		}
		return ev&zmq.POLLIN != 0, nil
	}
	return z.poll.wait(int(zmq.POLLIN), deadline)
}

func (z *zmqSocket) Close() error {
	if z.closed {
		return nil
	}
	z.closed = true
	z.poll.close()
	return mapErr(z.s.Close())
}

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	switch zmq.AsErrno(err) {
	case zmq.Errno(syscall.EAGAIN):
		return ErrAgain
	case zmq.Errno(syscall.EINTR):
		return ErrInterrupted
	case zmq.Errno(syscall.EHOSTUNREACH):
		return ErrUnroutable
	case zmq.ETERM, zmq.Errno(syscall.ENOTSOCK):
		return ErrClosed
	}
	if errors.Is(err, zmq.ErrorSocketClosed) || errors.Is(err, zmq.ErrorContextClosed) {
		return ErrClosed
	}
	return err
}
