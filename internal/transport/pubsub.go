package transport

import (
	"fmt"

	zmq "github.com/pebbe/zmq4"
)

// NewPub creates a PUB socket, and NewSub a SUB socket subscribed to the
// given prefixes (none: nothing; an empty prefix: everything). They exist
// for publish-subscribe fronts such as eMQP's, whose subscribers are plain
// SUB sockets receiving [topic, message].
//
// The native layer's NewSocket does not know these types yet (adding them
// is two cases in native.go and zmq.go), so for now they come from a
// context made by NewZMQ4Context; c of any other kind is an error. A PUB
// socket never blocks a sender: at its high-water mark libzmq drops the
// message for the slow subscriber, which is PUB's contract.
func NewPub(c Context, o Options) (Socket, error) {
	return newPubSub(c, zmq.PUB, o, nil)
}

// NewSub creates a SUB socket; see NewPub.
func NewSub(c Context, o Options, prefixes ...[]byte) (Socket, error) {
	return newPubSub(c, zmq.SUB, o, prefixes)
}

func newPubSub(c Context, zt zmq.Type, o Options, prefixes [][]byte) (Socket, error) {
	zc, ok := c.(*zmqContext)
	if !ok {
		return nil, fmt.Errorf("transport: %v sockets need a context from NewZMQ4Context, not %T", zt, c)
	}
	s, err := zc.zc.NewSocket(zt)
	if err != nil {
		return nil, fmt.Errorf("transport: new socket: %w", mapErr(err))
	}
	fail := func(err error) (Socket, error) {
		s.SetLinger(0)
		s.Close()
		return nil, err
	}
	if err := apply(s, 0, o); err != nil {
		return fail(err)
	}
	for _, p := range prefixes {
		if err := s.SetSubscribe(string(p)); err != nil {
			return fail(fmt.Errorf("transport: subscribe: %w", mapErr(err)))
		}
	}
	z := &zmqSocket{s: s, wantUID: o.UserID}
	if o.Security != nil {
		if err := z.SetSecurity(o.Security); err != nil {
			return fail(err)
		}
	}
	if err := z.openFD(); err != nil {
		return fail(err)
	}
	return z, nil
}
