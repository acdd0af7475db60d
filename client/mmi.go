package client

import (
	"context"
	"fmt"
	"strconv"
)

// MMI service names (8/MMI "Namespace": brokers handle "mmi." services
// themselves). mmi.service is standard; mmi.services and mmi.workers are
// extensions of this project's broker, and other brokers answer them with
// "501", reported as ErrNotImplemented.
const (
	MMIService  = "mmi.service"
	MMIServices = "mmi.services"
	MMIWorkers  = "mmi.workers"
)

// WorkerCounts is the broker's view of one service, from mmi.workers.
type WorkerCounts struct {
	Idle   int // Registered workers waiting for a request.
	Busy   int // Registered workers holding a request.
	Queued int // Requests waiting for a worker.
}

// ServiceExists asks the broker whether at least one worker is registered
// for service (8/MMI "mmi.service": "200" found, "404" not found).
func (c *Client) ServiceExists(ctx context.Context, service string) (bool, error) {
	rep, err := c.Request(ctx, MMIService, []byte(service))
	if err != nil {
		return false, err
	}
	switch code := mmiCode(rep); code {
	case "200":
		return true, nil
	case "404":
		return false, nil
	default:
		return false, mmiError(MMIService, code)
	}
}

// Services returns the names of the services that have at least one worker,
// as the broker lists them (mmi.services: "200", then one frame per name).
func (c *Client) Services(ctx context.Context) ([]string, error) {
	rep, err := c.Request(ctx, MMIServices)
	if err != nil {
		return nil, err
	}
	if code := mmiCode(rep); code != "200" {
		return nil, mmiError(MMIServices, code)
	}
	names := make([]string, 0, len(rep)-1)
	for _, f := range rep[1:] {
		names = append(names, string(f))
	}
	return names, nil
}

// Workers returns the worker and queue counts of service (mmi.workers:
// "200", then idle, busy and queued counts as decimal text; or "404", which
// is returned as ErrUnknownService).
func (c *Client) Workers(ctx context.Context, service string) (WorkerCounts, error) {
	rep, err := c.Request(ctx, MMIWorkers, []byte(service))
	if err != nil {
		return WorkerCounts{}, err
	}
	switch code := mmiCode(rep); code {
	case "200":
	case "404":
		return WorkerCounts{}, fmt.Errorf("%w: %q", ErrUnknownService, service)
	default:
		return WorkerCounts{}, mmiError(MMIWorkers, code)
	}
	return parseWorkers(rep)
}

// parseWorkers decodes a "200" answer to mmi.workers.
func parseWorkers(rep [][]byte) (WorkerCounts, error) {
	if len(rep) != 4 || mmiCode(rep) != "200" {
		return WorkerCounts{}, fmt.Errorf("%w: %s: %d frames, want \"200\" and 3 counts", ErrBadReply, MMIWorkers, len(rep))
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(string(rep[i+1]))
		if err != nil || v < 0 {
			return WorkerCounts{}, fmt.Errorf("%w: %s: count %.20q", ErrBadReply, MMIWorkers, rep[i+1])
		}
		n[i] = v
	}
	return WorkerCounts{Idle: n[0], Busy: n[1], Queued: n[2]}, nil
}

func mmiCode(rep [][]byte) string {
	if len(rep) == 0 {
		return ""
	}
	return string(rep[0])
}

func mmiError(service, code string) error {
	if code == "501" {
		return fmt.Errorf("%w: %s", ErrNotImplemented, service)
	}
	return fmt.Errorf("%w: %s: code %q", ErrBadReply, service, code)
}
