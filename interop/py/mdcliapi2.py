"""Majordomo 0.2 (18/MDP) client API.

18/MDP clients MUST use a DEALER socket and MUST be ready for zero or more
PARTIAL replies before the FINAL. Like the Guide's asynchronous mdcliapi2,
send() and recv() are separate calls; request() wraps them for the common
one-request-at-a-time case.
"""

import sys

import zmq

import mdp

PARTIAL = "partial"
FINAL = "final"


class MajorDomoClient2(object):
    """Talks 18/MDP/Client to one broker."""

    def __init__(self, broker, timeout_ms=2500, verbose=False, context=None):
        self.broker = broker
        self.timeout_ms = int(timeout_ms)
        self.verbose = verbose
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(broker)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self._log("connected to %s" % broker)

    def _log(self, what, frames=None):
        if self.verbose:
            line = "mdcli2: " + what
            if frames is not None:
                line += " " + mdp.dump(frames)
            print(line, file=sys.stderr, flush=True)

    def send(self, service, body):
        if isinstance(service, str):
            service = service.encode()
        msg = [mdp.C_CLIENT2, mdp.C2_REQUEST, service] + mdp.as_frames(body)
        self._log("send", msg)
        self.sock.send_multipart(msg)

    def recv(self, timeout_ms=None):
        """Wait for one PARTIAL or FINAL. Returns (kind, service, body) with
        kind PARTIAL or FINAL, or None on timeout."""
        if timeout_ms is None:
            timeout_ms = self.timeout_ms
        events = dict(self.poller.poll(timeout_ms))
        if events.get(self.sock) != zmq.POLLIN:
            return None
        frames = self.sock.recv_multipart()
        self._log("received", frames)
        if len(frames) < 3:
            raise mdp.ProtocolError("short message: %s" % mdp.dump(frames))
        if frames[0] != mdp.C_CLIENT2:
            raise mdp.ProtocolError("header %r, want %r" % (frames[0], mdp.C_CLIENT2))
        if frames[1] == mdp.C2_PARTIAL:
            kind = PARTIAL
        elif frames[1] == mdp.C2_FINAL:
            kind = FINAL
        else:
            raise mdp.ProtocolError("command 0x%s is not PARTIAL or FINAL" % frames[1].hex())
        return kind, frames[2], frames[3:]

    def request(self, service, body, timeout_ms=None):
        """Send a request and collect its replies. Returns (partials, final)
        where partials is a list of bodies; final is None on timeout (the
        time limit applies between two consecutive messages)."""
        if isinstance(service, str):
            service = service.encode()
        self.send(service, body)
        partials = []
        while True:
            got = self.recv(timeout_ms)
            if got is None:
                return partials, None
            kind, svc, reply = got
            if svc != service:
                raise mdp.ProtocolError("reply for service %r, asked %r" % (svc, service))
            if kind == FINAL:
                return partials, reply
            partials.append(reply)

    def extra(self, linger_ms):
        """Collect any message that arrives within linger_ms (after a FINAL
        the broker must send nothing more for that request)."""
        out = []
        deadline = mdp.monotonic_ms() + linger_ms
        while True:
            left = deadline - mdp.monotonic_ms()
            if left <= 0:
                return out
            events = dict(self.poller.poll(left))
            if events.get(self.sock) == zmq.POLLIN:
                out.append(self.sock.recv_multipart())

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
