// Package peercfg holds what the client and worker libraries configure
// alike: the brokers they reach, the security they connect with, the
// logger they write to, and how they open a socket to a broker. Each check
// is made here once; each library wraps the errors in its own
// ErrInvalidOption, so that its users see one sentinel per package.
package peercfg

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/secure"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// Common is the part of a client's or worker's settings that both share.
type Common struct {
	Brokers  []string            // Brokers beyond the one given first (WithBrokers).
	Log      *slog.Logger        // WithLogger; Endpoints sets a discarding one if none.
	Security *transport.Security // WithCurve, WithPlain; nil: none.
}

// AddBrokers appends endpoints to Brokers; none may be empty.
func (c *Common) AddBrokers(endpoints []string) error {
	for _, ep := range endpoints {
		if ep == "" {
			return errors.New("empty broker endpoint")
		}
	}
	c.Brokers = append(c.Brokers, endpoints...)
	return nil
}

// SetLogger sets Log; a nil logger is refused, since "no logs" is what
// leaving the option out means.
func (c *Common) SetLogger(l *slog.Logger) error {
	if l == nil {
		return errors.New("nil logger")
	}
	c.Log = l
	return nil
}

// SetCurve sets CURVE client security with the broker's public key and the
// peer's own secret certificate; role ("client", "worker") names the peer
// in errors.
func (c *Common) SetCurve(serverKey auth.Key, cert *auth.Cert, role string) error {
	sec, err := secure.CurveClient(serverKey, cert, role)
	if err != nil {
		return err
	}
	c.Security = sec
	return nil
}

// SetPlain sets PLAIN client security.
func (c *Common) SetPlain(username, password string) error {
	sec, err := secure.PlainClient(username, password)
	if err != nil {
		return err
	}
	c.Security = sec
	return nil
}

// Endpoints returns first followed by Brokers, after checking that none is
// empty, none is listed twice and (with max > 0) there are at most max. It
// also gives Log its default, a logger that discards: a library logs
// nothing unasked.
func (c *Common) Endpoints(first string, max int) ([]string, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if first == "" {
		return nil, errors.New("empty broker endpoint")
	}
	endpoints := append([]string{first}, c.Brokers...)
	if max > 0 && len(endpoints) > max {
		return nil, fmt.Errorf("%d brokers, at most %d", len(endpoints), max)
	}
	seen := make(map[string]bool, len(endpoints))
	for _, ep := range endpoints {
		if seen[ep] {
			return nil, fmt.Errorf("broker %q listed twice", ep)
		}
		seen[ep] = true
	}
	return endpoints, nil
}

// Dial makes a DEALER socket in zctx and connects it to endpoint, closing
// it again if the connect fails.
func Dial(zctx transport.Context, endpoint string, opts transport.Options) (transport.Socket, error) {
	s, err := zctx.NewSocket(transport.Dealer, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Connect(endpoint); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
