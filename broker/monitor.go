package broker

import (
	"fmt"
	"sync/atomic"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// connCounter counts the connections to the broker's endpoints from libzmq's
// socket monitor. The monitor's PAIR socket belongs to its own goroutine,
// since the loop's wait covers only the ROUTER; the count is an atomic that
// the loop reads for Stats.
type connCounter struct {
	n    atomic.Int64
	quit chan struct{}
	done chan struct{}
	pair transport.Socket
}

// startMonitor turns the socket monitor on. It runs on the loop goroutine,
// which owns the ROUTER. A failure only costs the gauge, so it is logged,
// not returned.
func (b *Broker) startMonitor() {
	ep := fmt.Sprintf("inproc://mdbroker-monitor-%p", b)
	if err := b.sock.Monitor(ep); err != nil {
		b.log.Warn("connection monitor off", "error", err.Error())
		return
	}
	pair, err := b.zctx.NewSocket(transport.Pair, transport.Options{})
	if err == nil {
		if err = pair.Connect(ep); err != nil {
			pair.Close()
		}
	}
	if err != nil {
		b.log.Warn("connection monitor off", "error", err.Error())
		return
	}
	c := &b.conns
	c.quit, c.done, c.pair = make(chan struct{}), make(chan struct{}), pair
	go c.run()
}

func (c *connCounter) run() {
	defer close(c.done)
	defer c.pair.Close()
	for {
		select {
		case <-c.quit:
			return
		default:
		}
		if ok, err := c.pair.WaitReadable(-1); err != nil {
			return
		} else if !ok {
			continue // Woken: look at quit.
		}
		for {
			f, _, err := c.pair.Recv(0, true)
			if err != nil {
				break
			}
			switch ev, _, _, _ := transport.ParseMonitorEvent(f); ev {
			case transport.EventAccepted:
				c.n.Add(1)
			case transport.EventDisconnected:
				c.n.Add(-1)
			}
		}
	}
}

// stop ends the monitor goroutine; its socket must be closed before the
// context is terminated.
func (c *connCounter) stop() {
	if c.quit == nil {
		return
	}
	close(c.quit)
	c.pair.Wake()
	<-c.done
}
