package transport

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// NewContext returns a Context backed by a private libzmq context.
func NewContext() (Context, error) {
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
	for {
		err := c.zc.Term()
		if err == nil || !errors.Is(mapErr(err), ErrInterrupted) {
			return mapErr(err)
		}
	}
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
	p := zmq.NewPoller()
	p.Add(s, zmq.POLLIN)
	return &zmqSocket{s: s, poller: p}, nil
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

type zmqSocket struct {
	s      *zmq.Socket
	poller *zmq.Poller
	closed bool
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
	var base zmq.Flag
	if dontwait {
		base = zmq.DONTWAIT
	}
	last := len(frames) - 1
	for i, f := range frames {
		flag := base
		if i < last {
			flag |= zmq.SNDMORE
		}
		for {
			_, err := z.s.SendBytes(f, flag)
			if err == nil {
				break
			}
			err = mapErr(err)
			if errors.Is(err, ErrInterrupted) {
				// Retry: giving up after the first frame would leave a
				// half-sent message queued in libzmq.
				continue
			}
			if i > 0 && errors.Is(err, ErrAgain) {
				// libzmq accepts the rest of a multipart message once
				// the first frame went out; this cannot happen, but a
				// half message must never be left behind.
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
	var flag zmq.Flag
	if dontwait {
		flag = zmq.DONTWAIT
	}
	var frames [][]byte
	dropped := 0
	for {
		b, err := z.s.RecvBytes(flag)
		if err != nil {
			err = mapErr(err)
			if len(frames) > 0 || dropped > 0 {
				if errors.Is(err, ErrInterrupted) || errors.Is(err, ErrAgain) {
					// The rest of a multipart message is already here;
					// never return half of it.
					continue
				}
			}
			return nil, 0, err
		}
		if maxFrames <= 0 || len(frames) < maxFrames {
			frames = append(frames, b)
		} else {
			dropped++
		}
		more, err := z.s.GetRcvmore()
		if err != nil {
			if errors.Is(mapErr(err), ErrInterrupted) {
				more, err = z.s.GetRcvmore()
			}
			if err != nil {
				return nil, 0, mapErr(err)
			}
		}
		if !more {
			return frames, dropped, nil
		}
		flag = 0
	}
}

func (z *zmqSocket) WaitReadable(timeout time.Duration) (bool, error) {
	if z.closed {
		return false, ErrClosed
	}
	deadline := time.Now().Add(timeout)
	for {
		polled, err := z.poller.Poll(timeout)
		if err == nil {
			return len(polled) > 0, nil
		}
		err = mapErr(err)
		if !errors.Is(err, ErrInterrupted) || timeout < 0 {
			return false, err
		}
		// poll(2) is never restarted after a signal, and the Go runtime
		// sends signals all the time (goroutine preemption), so a bounded
		// wait simply goes on for the time it has left. An unbounded wait
		// returns ErrInterrupted so that its caller can look at shutdown.
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return false, nil
		}
	}
}

func (z *zmqSocket) Close() error {
	if z.closed {
		return nil
	}
	z.closed = true
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
