package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Titanic service names (9/TSP "Services").
const (
	TitanicRequest = "titanic.request"
	TitanicReply   = "titanic.reply"
	TitanicClose   = "titanic.close"
)

// Errors of the Titanic helper, matching the 9/TSP status codes other than
// 200. Test for them with errors.Is.
var (
	// ErrTitanicPending: 300, the reply is not there yet; ask again later.
	ErrTitanicPending = errors.New("client: titanic: reply pending (300)")
	// ErrTitanicUnknown: 400, the UUID is invalid or unknown (never
	// submitted, closed, or expired); asking again will not help.
	ErrTitanicUnknown = errors.New("client: titanic: unknown request (400)")
	// ErrTitanicServer: 500, the Titanic server failed (for example its
	// storage); try again later.
	ErrTitanicServer = errors.New("client: titanic: server error (500)")
)

// Default polling of Titanic.Request.
const (
	DefaultTitanicPollMin = 10 * time.Millisecond
	DefaultTitanicPollMax = time.Second
)

// Titanic is a 9/TSP client: disconnected, persistent request-reply through
// a Titanic server (the titanic.request, titanic.reply and titanic.close
// services) behind the broker that Client talks to.
//
//	t := &client.Titanic{Client: c}
//	reply, err := t.Request(ctx, "echo", []byte("hello"))
//
// Each call is one Client.Request, with its handling of late replies (see
// Client.Request): ErrNoWorkers when no Titanic server is registered. A titanic.request resent after a timeout may have been
// stored the first time too, so the service can receive the request twice;
// as with MDP itself, services should be idempotent. A Titanic is safe for
// concurrent use; a Client keeps up to WithSockets requests per service on
// the wire (see Client), so for more submissions in flight use several
// Clients or a larger WithSockets.
type Titanic struct {
	Client *Client
	// PollMin and PollMax bound the pause between titanic.reply polls in
	// Request, which starts at PollMin and doubles up to PollMax (defaults
	// DefaultTitanicPollMin and DefaultTitanicPollMax). 500 answers are
	// retried with the same pauses.
	PollMin, PollMax time.Duration
}

// tspStatus returns the status code of a TSP reply: its first frame must be
// three digits, optionally followed by a space and text that "a client MUST
// NOT treat ... as significant" (9/TSP "Status Frames").
func tspStatus(service string, rep [][]byte) (string, error) {
	if len(rep) == 0 || len(rep[0]) < 3 || (len(rep[0]) > 3 && rep[0][3] != ' ') {
		return "", fmt.Errorf("%w: %s: no status frame", ErrBadReply, service)
	}
	code := string(rep[0][:3])
	switch code {
	case "200", "300", "400", "500":
		return code, nil
	}
	return "", fmt.Errorf("%w: %s: status %q", ErrBadReply, service, rep[0])
}

func tspError(service, code string) error {
	switch code {
	case "300":
		return fmt.Errorf("%w: %s", ErrTitanicPending, service)
	case "400":
		return fmt.Errorf("%w: %s", ErrTitanicUnknown, service)
	case "500":
		return fmt.Errorf("%w: %s", ErrTitanicServer, service)
	}
	return fmt.Errorf("%w: %s: status %s", ErrBadReply, service, code)
}

// Submit asks Titanic to store a request for service and returns its UUID
// (32 hexadecimal digits). Titanic answers only once the request is stored
// durably; it is then sent to service whenever the service has workers.
func (t *Titanic) Submit(ctx context.Context, service string, body ...[]byte) (string, error) {
	if service == "" {
		return "", ErrEmptyService
	}
	req := make([][]byte, 0, 1+len(body))
	req = append(append(req, []byte(service)), body...)
	rep, err := t.Client.Request(ctx, TitanicRequest, req...)
	if err != nil {
		return "", err
	}
	code, err := tspStatus(TitanicRequest, rep)
	if err != nil {
		return "", err
	}
	if code != "200" {
		return "", tspError(TitanicRequest, code)
	}
	if len(rep) < 2 || !isUUID(rep[1]) {
		return "", fmt.Errorf("%w: %s: 200 without a 32-hex-digit UUID", ErrBadReply, TitanicRequest)
	}
	return string(rep[1]), nil
}

func isUUID(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Reply returns the reply to request uuid if there is one. Otherwise it
// fails with ErrTitanicPending (not yet), ErrTitanicUnknown (no such
// request) or ErrTitanicServer. It does not delete the reply: asking again
// returns it again, until Close.
func (t *Titanic) Reply(ctx context.Context, uuid string) ([][]byte, error) {
	rep, err := t.Client.Request(ctx, TitanicReply, []byte(uuid))
	if err != nil {
		return nil, err
	}
	code, err := tspStatus(TitanicReply, rep)
	if err != nil {
		return nil, err
	}
	if code != "200" {
		return nil, tspError(TitanicReply, code)
	}
	return rep[1:], nil
}

// Close tells Titanic that the reply to uuid is no longer needed; it deletes
// the request and its reply. Closing an unknown UUID succeeds.
func (t *Titanic) Close(ctx context.Context, uuid string) error {
	rep, err := t.Client.Request(ctx, TitanicClose, []byte(uuid))
	if err != nil {
		return err
	}
	code, err := tspStatus(TitanicClose, rep)
	if err != nil {
		return err
	}
	if code != "200" {
		return tspError(TitanicClose, code)
	}
	return nil
}

// Request is the whole Titanic round: Submit, then poll Reply until the
// reply is there, then Close, and return the reply. 500 answers, timeouts
// of single calls and ErrNoWorkers (no Titanic server registered with the
// broker just then) are retried, with pauses from PollMin doubling to
// PollMax, until ctx ends; so give ctx a deadline. A 400 while polling
// (the request was closed or expired meanwhile) ends it with
// ErrTitanicUnknown. If Close fails the reply is still returned: the entry
// is then left to the server's retention policy.
func (t *Titanic) Request(ctx context.Context, service string, body ...[]byte) ([][]byte, error) {
	lo, hi := t.PollMin, t.PollMax
	if lo <= 0 {
		lo = DefaultTitanicPollMin
	}
	if hi < lo {
		hi = max(DefaultTitanicPollMax, lo)
	}
	pause := lo
	wait := func() error {
		tm := time.NewTimer(pause)
		defer tm.Stop()
		pause = min(2*pause, hi)
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctxError(ctx, TitanicReply)
		}
	}
	// No Titanic worker registered (ErrNoWorkers) is retried like a 500:
	// a Titanic server being restarted is not a reason to give up.
	retryable := func(err error) bool {
		return ctx.Err() == nil && (errors.Is(err, ErrTitanicServer) || errors.Is(err, ErrTimeout) ||
			errors.Is(err, ErrNoWorkers))
	}

	var uuid string
	for {
		id, err := t.Submit(ctx, service, body...)
		if err == nil {
			uuid = id
			break
		}
		if !retryable(err) {
			return nil, err
		}
		if err := wait(); err != nil {
			return nil, err
		}
	}
	pause = lo
	var reply [][]byte
	for {
		rep, err := t.Reply(ctx, uuid)
		if err == nil {
			reply = rep
			break
		}
		if !errors.Is(err, ErrTitanicPending) && !retryable(err) {
			return nil, fmt.Errorf("titanic request %s: %w", uuid, err)
		}
		if err := wait(); err != nil {
			return nil, fmt.Errorf("titanic request %s: %w", uuid, err)
		}
	}
	if err := t.Close(ctx, uuid); err != nil {
		t.Client.log.Warn("titanic: close failed; the reply is left to the server's retention",
			"uuid", uuid, "error", err.Error())
	}
	return reply, nil
}
