package secure

import (
	"errors"
	"strconv"
	"sync"

	"github.com/majordomo-go/majordomo/auth"
	"github.com/majordomo-go/majordomo/internal/transport"
)

// handler is an Authenticator installed as the authentication hook of a
// transport context: every server socket of that context asks it about each
// connecting peer, with 27/ZAP's request fields and semantics (the ZAP
// handler on inproc://zeromq.zap.01 that libzmq needed is gone; the engine
// calls the hook directly during the handshake).
type handler struct {
	a    *auth.Authenticator
	zctx transport.Context
	once sync.Once
}

// startHandler installs a as zctx's authenticator. 27/ZAP: "The handler
// SHALL start before any server starts": call it before server sockets
// bind, or their first handshakes go unauthenticated. One handler serves a
// context; a second replaces the first.
func startHandler(zctx transport.Context, a *auth.Authenticator) (*handler, error) {
	if a == nil {
		return nil, errors.New("auth: a secured context needs an Authenticator")
	}
	if zctx.Authenticator() != nil {
		// 27/ZAP: "There SHALL be one handler in a process".
		return nil, errors.New("auth: this context already has an authentication handler")
	}
	h := &handler{a: a, zctx: zctx}
	zctx.SetAuthenticator(h)
	return h, nil
}

// stop removes the hook: later handshakes are not authenticated. Safe to
// call more than once.
func (h *handler) stop() {
	h.once.Do(func() { h.zctx.SetAuthenticator(nil) })
}

// Authenticate answers one request (27/ZAP "Message Format": status code,
// status text, user id; the user id "SHALL be empty" unless 200).
func (h *handler) Authenticate(req *transport.AuthRequest) transport.AuthResult {
	r := &auth.Request{Domain: req.Domain, Address: req.Address, Identity: req.Identity,
		Mechanism: req.Mechanism, Credentials: req.Credentials}
	res := h.a.Authenticate(r)
	status, err := strconv.Atoi(res.Status)
	if err != nil {
		status = 500
	}
	out := transport.AuthResult{Status: status, Text: res.Text}
	if status == 200 {
		out.UserID = res.UserID
	}
	return out
}
