// Package inproc lets in-process peers reach a server's inproc://
// endpoints. An inproc:// endpoint exists only inside the transport context
// that bound it, and each client, worker and server of this module makes a
// context of its own; so a server that binds inproc:// endpoints shares its
// context here, under each endpoint's name, and a client or worker that
// connects to one of those names makes its sockets in that context.
//
// A shared context is terminated when its last holder lets go (Term on
// every handle), so a server can stop while in-process peers still hold
// sockets: their connections simply go quiet, and the transport context
// outlives neither.
//
// In-process connections need no handshake: nothing crosses a process or
// host boundary, so no security mechanism applies to them.
package inproc

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// Prefix starts every in-process endpoint.
const Prefix = "inproc://"

// IsEndpoint reports whether ep is an inproc:// endpoint.
func IsEndpoint(ep string) bool { return strings.HasPrefix(ep, Prefix) }

// ErrNoServer is returned by Context when no server in this process has
// shared an endpoint of that name.
var ErrNoServer = errors.New("no server in this process is bound to it")

// Shared is a transport context with reference-counted termination.
type Shared struct {
	ctx  transport.Context
	mu   sync.Mutex
	refs int // Handles not yet terminated; 0: the context is terminated.
}

// Share wraps ctx and returns the first handle on it, for the server that
// made it. Its Term releases the server's hold.
func Share(ctx transport.Context) (*Shared, transport.Context) {
	s := &Shared{ctx: ctx, refs: 1}
	return s, &handle{s: s}
}

// acquire returns a new handle, or false once the context is terminated.
func (s *Shared) acquire() (transport.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		return nil, false
	}
	s.refs++
	return &handle{s: s}, true
}

// release drops one hold and terminates the context with the last one.
func (s *Shared) release() error {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if !last {
		return nil
	}
	return s.ctx.Term()
}

// handle is one holder's view of a Shared context.
type handle struct {
	s    *Shared
	once sync.Once
	err  error
}

func (h *handle) NewSocket(t transport.Type, o transport.Options) (transport.Socket, error) {
	return h.s.ctx.NewSocket(t, o)
}

func (h *handle) SetAuthenticator(a transport.Authenticator) { h.s.ctx.SetAuthenticator(a) }

func (h *handle) Authenticator() transport.Authenticator { return h.s.ctx.Authenticator() }

func (h *handle) Term() error {
	h.once.Do(func() { h.err = h.s.release() })
	return h.err
}

var (
	regMu    sync.Mutex
	registry = map[string]*Shared{}
)

// Register makes endpoint (as bound) reachable by Context. A name can be
// registered once per process: two servers' contexts could each bind it,
// but a peer could not tell which it meant.
func Register(endpoint string, s *Shared) error {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[endpoint]; dup {
		return fmt.Errorf("inproc: %s is already bound by another server in this process", endpoint)
	}
	registry[endpoint] = s
	return nil
}

// Unregister forgets endpoint if s registered it.
func Unregister(endpoint string, s *Shared) {
	regMu.Lock()
	defer regMu.Unlock()
	if registry[endpoint] == s {
		delete(registry, endpoint)
	}
}

// Context returns a handle on the context that bound endpoint; the caller
// makes its sockets with it and calls Term when done with them.
func Context(endpoint string) (transport.Context, error) {
	regMu.Lock()
	s := registry[endpoint]
	regMu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("%s: %w", endpoint, ErrNoServer)
	}
	h, ok := s.acquire()
	if !ok {
		return nil, fmt.Errorf("%s: %w", endpoint, ErrNoServer)
	}
	return h, nil
}

// NewContext returns the context for a peer connecting to endpoint: the
// server's shared one for an inproc:// endpoint, a new one otherwise.
func NewContext(endpoint string) (transport.Context, error) {
	if IsEndpoint(endpoint) {
		return Context(endpoint)
	}
	return transport.NewContext()
}

// Contexts returns the transport context for each endpoint of a peer that
// talks to several brokers: an inproc:// broker's own (Context), and one
// new context shared by all the others. Terminate them with Unique.
func Contexts(endpoints []string) ([]transport.Context, error) {
	out := make([]transport.Context, len(endpoints))
	var shared transport.Context
	for i, ep := range endpoints {
		var err error
		switch {
		case IsEndpoint(ep):
			out[i], err = Context(ep)
		case shared != nil:
			out[i] = shared
		default:
			shared, err = transport.NewContext()
			out[i] = shared
		}
		if err != nil {
			for _, zc := range Unique(out[:i]) {
				zc.Term()
			}
			return nil, err
		}
	}
	return out, nil
}

// Unique lists each context of ctxs once (nil left out), so that each is
// terminated once.
func Unique(ctxs []transport.Context) []transport.Context {
	var out []transport.Context
	for _, zc := range ctxs {
		if zc != nil && !slices.Contains(out, zc) {
			out = append(out, zc)
		}
	}
	return out
}
