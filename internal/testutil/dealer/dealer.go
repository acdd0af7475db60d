// Package dealer gives tests a DEALER socket in a transport context of its
// own, connected to an endpoint and released when the test ends: the raw
// peer that tests of the broker, its fronts and its tools speak through.
package dealer

import (
	"sync"
	"testing"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// Socket is a connected DEALER. Close releases the socket and its context;
// it runs when the test ends unless the test calls it first.
type Socket struct {
	transport.Socket
	ctx  transport.Context
	once sync.Once
}

// Dial connects a DEALER with opts to endpoint, failing the test if it
// cannot.
func Dial(t testing.TB, endpoint string, opts transport.Options) *Socket {
	t.Helper()
	ctx, err := transport.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.NewSocket(transport.Dealer, opts)
	if err != nil {
		ctx.Term()
		t.Fatal(err)
	}
	if err := s.Connect(endpoint); err != nil {
		s.Close()
		ctx.Term()
		t.Fatal(err)
	}
	d := &Socket{Socket: s, ctx: ctx}
	t.Cleanup(func() { d.Close() })
	return d
}

// Close closes the socket and terminates its context; later calls do
// nothing.
func (d *Socket) Close() error {
	var err error
	d.once.Do(func() {
		err = d.Socket.Close()
		d.ctx.Term()
	})
	return err
}
