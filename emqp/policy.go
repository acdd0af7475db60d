package emqp

import (
	"context"
	"log/slog"
)

// The per-service policy, mapped onto eMQP (see Config.Authorizer). Every
// check runs on the loop, for the message being handled, whose sender's
// ZAP User-Id is s.uid.

// mayCall reports whether the sender may call service (a queue, or one of
// the Service* names).
func (s *Server) mayCall(service string) bool {
	return s.cfg.Authorizer == nil || s.cfg.Authorizer.MayCall(s.uid, service)
}

// mayRegister reports whether the sender may serve service.
func (s *Server) mayRegister(service string) bool {
	return s.cfg.Authorizer == nil || s.cfg.Authorizer.MayRegister(s.uid, service)
}

// refuse counts a message the policy refused, on the socket which, and
// logs it: the details at debug level, a summary line per front at most
// once per housekeeping tick, so that a flood cannot flood the log. The
// peer is not answered, as the MDP broker does not answer a refused
// request: EventMQ's peers then time out or retry.
func (s *Server) refuse(which int, what, service string, id []byte) {
	s.stats.Dropped[DropUnauthorized]++
	s.stats.Unauthorized[which]++
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("emqp: refused by the policy", "front", fronts[which], "command", what,
			"service", service, "identity", s.uid, "peer", printable(id))
	}
	s.warn("emqp: commands refused by the policy (debug logs name them): " + fronts[which] + " " + what)
}
