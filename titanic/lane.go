package titanic

import (
	"context"
	"log/slog"
	"sync"

	"github.com/majordomo-go/majordomo/client"
)

// lane is one client.Client, the client library's engine with one DEALER
// socket to the broker, carrying at most one request at a time: MDP
// replies name the service, not the request, so one request per socket is
// what ties a reply to its UUID. Lanes are made as the dispatcher first
// needs them, up to MaxInFlight, so that a Titanic whose services have no
// workers holds no idle connections. A lane belongs to the run goroutine
// while idle, and to its request's attempt (launch, then the evResult
// event that gives it back) while busy.
type lane struct {
	n  int
	cl *client.Client // Nil until the lane's first request.
}

// clientOpts are the options every client of the dispatcher shares: the
// server's logger, and CURVE when configured (an inproc:// broker endpoint
// ignores it: nothing crosses a process boundary).
func clientOpts(cfg *Config, log *slog.Logger) []client.Option {
	opts := []client.Option{client.WithLogger(log)}
	if cfg.CurveCert != nil {
		opts = append(opts, client.WithCurve(cfg.CurveServerKey, cfg.CurveCert))
	}
	return opts
}

// launch sends the jobs that dispatch queued, each on an idle lane. It
// does not wait for replies: each attempt ends with an evResult event.
// Bodies not kept in memory are read back from the store on a goroutine of
// wg, off the run goroutine, since a shared store's read is a network round
// trip.
func (d *dispatcher) launch(ctx context.Context, wg *sync.WaitGroup) {
	for {
		var j job
		select {
		case j = <-d.jobs:
		default:
			return
		}
		l := d.takeLane()
		if j.body != nil {
			d.send(ctx, l, j, j.body)
			continue
		}
		wg.Go(func() {
			_, body, ok, err := d.srv.store.Request(j.id)
			switch {
			case err != nil:
				d.post(event{kind: evResult, item: j.it, lane: l, err: err})
			case !ok:
				d.post(event{kind: evResult, item: j.it, lane: l, err: errGone})
			default:
				d.send(ctx, l, j, body)
			}
		})
	}
}

// takeLane returns an idle lane, making one if none is idle: there are
// never more lanes than requests in flight, at most MaxInFlight.
func (d *dispatcher) takeLane() *lane {
	if n := len(d.idle); n > 0 {
		l := d.idle[n-1]
		d.idle[n-1] = nil
		d.idle = d.idle[:n-1]
		return l
	}
	l := &lane{n: len(d.lanes)}
	d.lanes = append(d.lanes, l)
	return l
}

// send starts one attempt of j on l, which it has to itself.
//
// 7/MDP client REQUEST: the body goes to the worker untouched, so Titanic
// needs nothing from workers (9/TSP "Titanic requires no modifications to
// workers"). The attempt's deadline ends the call before the client's own
// timeout (laneOpts), so the client neither asks mmi nor resends: the
// dispatcher decides what a timeout means. A call that ends unanswered
// leaves its service marked in the client, which replaces its socket
// before the next request to that service (Lazy Pirate, 7/MDP
// "MDP/Client"), so a late reply can never be taken for the next
// request's.
func (d *dispatcher) send(ctx context.Context, l *lane, j job, body [][]byte) {
	if l.cl == nil {
		cl, err := client.Connect(d.cfg.Broker, d.laneOpts...)
		if err != nil {
			d.post(event{kind: evResult, item: j.it, lane: l, err: err})
			return
		}
		l.cl = cl
	}
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	done := func(reply [][]byte, err error) {
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			err = errAbandoned
		case actx.Err() != nil:
			err = errTimeout
		}
		d.post(event{kind: evResult, item: j.it, lane: l, body: reply, err: err})
	}
	if err := l.cl.Go(actx, j.service, body, done); err != nil {
		done(nil, err)
	}
}

// closeLanes closes every lane's client, once no attempt can start.
func (d *dispatcher) closeLanes() {
	for _, l := range d.lanes {
		if l.cl == nil {
			continue
		}
		if err := l.cl.Close(); err != nil {
			d.srv.log.Warn("dispatcher: closing a lane's client", "lane", l.n, "error", err)
		}
		l.cl = nil
	}
	d.lanes, d.idle = nil, nil
}
