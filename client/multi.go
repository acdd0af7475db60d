package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrUnknownBroker: RequestAt named a broker that is not one of the
// client's (see Brokers).
var ErrUnknownBroker = errors.New("client: not one of the client's brokers")

// RequestAt is Request through one particular broker of the client's list,
// named by its endpoint as given to Connect or WithBrokers. It never moves
// to another broker: when that broker does not answer, the request is
// resent to it on a new socket (Lazy Pirate) up to WithRetries times, and a
// "no workers" answer is ErrNoWorkers at once. Use it for questions about
// one broker, such as the mmi.* services, which each broker answers for
// itself only.
func (c *Client) RequestAt(ctx context.Context, broker, service string, body ...[]byte) ([][]byte, error) {
	i, ok := c.brokerIdx[broker]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownBroker, broker)
	}
	return c.request(ctx, service, body, i)
}

// BrokerAnswer is one broker's answer in ServiceByBroker.
type BrokerAnswer struct {
	Broker string // The broker's endpoint.
	Exists bool   // "200": at least one worker is registered there.
	Err    error  // Non-nil: the broker gave no usable answer (for example ErrTimeout); Exists is false.
}

// ServiceByBroker asks every broker of the client, in parallel, whether it
// has a worker for service (8/MMI mmi.service through RequestAt), and
// returns their answers in the order of Brokers. With several brokers,
// ServiceExists answers for whichever broker the client chose; this tells
// them apart. A broker that does not answer costs up to the client's
// timeout per attempt; ctx bounds the whole.
func (c *Client) ServiceByBroker(ctx context.Context, service string) []BrokerAnswer {
	out := make([]BrokerAnswer, len(c.endpoints))
	var wg sync.WaitGroup
	for i, ep := range c.endpoints {
		out[i].Broker = ep
		wg.Go(func() {
			rep, err := c.RequestAt(ctx, ep, MMIService, []byte(service))
			if err == nil {
				switch code := mmiCode(rep); code {
				case "200":
					out[i].Exists = true
				case "404":
				default:
					err = mmiError(MMIService, code)
				}
			}
			out[i].Err = err
		})
	}
	wg.Wait()
	return out
}
