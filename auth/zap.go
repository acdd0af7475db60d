package auth

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/majordomo-go/majordomo/internal/transport"
)

// ZAPEndpoint is where a ZAP handler binds (27/ZAP "Architecture": "The
// handler SHALL bind to the endpoint inproc://zeromq.zap.01").
const ZAPEndpoint = "inproc://zeromq.zap.01"

// zapVersion is the only ZAP version (27/ZAP: "The version frame, which
// SHALL contain the three octets 1.0").
const zapVersion = "1.0"

// Handler is a running ZAP handler: one goroutine that owns a REP socket on
// ZAPEndpoint in a transport context and answers libzmq's authentication
// requests for every server socket of that context with an Authenticator.
type Handler struct {
	a       *Authenticator
	sock    transport.Socket
	stop    atomic.Bool
	done    chan struct{}
	once    sync.Once
	errored atomic.Pointer[error]
}

// StartHandler binds the handler in zctx and starts it. 27/ZAP: "The
// handler SHALL start before any server starts": call it before the server
// sockets bind, or their first handshakes go unauthenticated. Only one
// handler can run per context (27/ZAP: "There SHALL be one handler in a
// process"; libzmq's inproc endpoint is per context).
func StartHandler(zctx transport.Context, a *Authenticator) (*Handler, error) {
	if a == nil {
		return nil, errors.New("auth: StartHandler needs an Authenticator")
	}
	sock, err := zctx.NewSocket(transport.Rep, transport.Options{})
	if err != nil {
		return nil, fmt.Errorf("auth: ZAP handler: %w", err)
	}
	if _, err := sock.Bind(ZAPEndpoint); err != nil {
		sock.Close()
		return nil, fmt.Errorf("auth: ZAP handler (is another one running in this context?): %w", err)
	}
	h := &Handler{a: a, sock: sock, done: make(chan struct{})}
	go h.run()
	return h, nil
}

// Stop stops the handler and closes its socket; it returns once the
// goroutine has finished. The context can be terminated after it. Safe to
// call more than once.
func (h *Handler) Stop() {
	h.once.Do(func() {
		h.stop.Store(true)
		h.sock.Wake()
	})
	<-h.done
}

// Err returns the error that stopped the handler early, if any.
func (h *Handler) Err() error {
	if p := h.errored.Load(); p != nil {
		return *p
	}
	return nil
}

func (h *Handler) run() {
	defer close(h.done)
	defer h.sock.Close()
	for !h.stop.Load() {
		// 6 fixed frames and at most 2 credentials; a longer message is
		// malformed, and the rest is discarded.
		frames, dropped, err := h.sock.Recv(16, false)
		if err != nil {
			if errors.Is(err, transport.ErrInterrupted) || errors.Is(err, transport.ErrAgain) {
				continue
			}
			if !h.stop.Load() && !errors.Is(err, transport.ErrClosed) {
				h.a.log.Error("ZAP handler stopped", "error", err.Error())
				h.errored.Store(&err)
			}
			return
		}
		reply := h.answer(frames, dropped)
		if err := h.sock.Send(reply, false); err != nil {
			if !errors.Is(err, transport.ErrClosed) && !errors.Is(err, transport.ErrInterrupted) {
				h.a.log.Error("ZAP reply not sent", "error", err.Error())
			}
		}
	}
}

// answer builds the reply to one request (27/ZAP "Message Format"). A REP
// socket must answer every request, malformed ones included.
func (h *Handler) answer(f [][]byte, dropped int) [][]byte {
	var id []byte
	if len(f) > 1 {
		id = f[1] // 27/ZAP: "The reply SHALL echo the request id without modifying it."
	}
	if len(f) < 6 || dropped > 0 || string(f[0]) != zapVersion {
		h.a.refuse(&Request{Mechanism: "?"}, RefusedMalformed, "")
		return reply(id, "500", "malformed ZAP request", "")
	}
	r := &Request{ID: id, Domain: string(f[2]), Address: string(f[3]), Identity: f[4],
		Mechanism: string(f[5]), Credentials: f[6:]}
	res := h.a.Authenticate(r)
	// 27/ZAP: the user id "SHALL be empty" for any status but 200.
	uid := ""
	if res.Status == "200" {
		uid = res.UserID
	}
	return reply(id, res.Status, res.Text, uid)
}

func reply(id []byte, status, text, userID string) [][]byte {
	// Metadata is empty: the broker needs only the User-Id.
	return [][]byte{[]byte(zapVersion), id, []byte(status), []byte(text), []byte(userID), {}}
}
