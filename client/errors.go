package client

import (
	"context"
	"errors"
	"fmt"
)

// Errors returned by the client. Test for them with errors.Is: returned
// errors wrap them with the service name and other detail.
var (
	// ErrTimeout: no reply came within the timeout after every retry, or the
	// request's context deadline passed (such errors match both ErrTimeout
	// and context.DeadlineExceeded).
	ErrTimeout = errors.New("client: timeout")
	// ErrNoWorkers: the broker said no worker is registered for the service
	// (8/MMI mmi.service "404", or mmi.workers counts), so the request
	// would only wait in the broker's queue. The returned error names the
	// service. See Client.Request for when the client asks.
	ErrNoWorkers = errors.New("client: no workers")
	// ErrClosed: the Client or Pipeline was closed.
	ErrClosed = errors.New("client: closed")
	// ErrEmptyService: the service name is empty, which MDP forbids.
	ErrEmptyService = errors.New("client: empty service name")
	// ErrInterrupted: a stream that had already delivered a PARTIAL lost its
	// connection (the socket was reopened after another request timed out).
	// Resending it would repeat the PARTIALs already delivered, so the
	// client gives up instead.
	ErrInterrupted = errors.New("client: stream interrupted")
	// ErrInvalidOption: an Option was given a bad value.
	ErrInvalidOption = errors.New("client: invalid option")
	// ErrNotImplemented: the broker answered an MMI request with "501"
	// (8/MMI: unimplemented mmi.* services reply "501").
	ErrNotImplemented = errors.New("client: mmi: not implemented by the broker")
	// ErrUnknownService: the broker answered an MMI request with "404".
	ErrUnknownService = errors.New("client: mmi: unknown service")
	// ErrBadReply: a reply did not have the expected format.
	ErrBadReply = errors.New("client: malformed reply")
)

// ctxError turns a finished context into the error a call returns: a
// deadline is a timeout (matching ErrTimeout and context.DeadlineExceeded),
// a cancellation matches context.Canceled.
func ctxError(ctx context.Context, service string) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: service %q: %w", ErrTimeout, service, err)
	}
	return fmt.Errorf("client: service %q: %w", service, err)
}
