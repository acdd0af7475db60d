"""Majordomo 0.1 (7/MDP) client API.

A synchronous client in the manner of the Guide's mdcliapi: one request at a
time on a REQ socket, polling with a timeout, and on timeout closing the
socket, opening a new one and resending (the "Lazy Pirate" recovery the spec
recommends). 7/MDP also lets a client use a DEALER socket if it writes the
empty frame 0 itself; use_dealer=True does that, which lets a caller see
every message the broker sends, extra ones included.
"""

import sys

import zmq

import mdp


class MajorDomoClient(object):
    """Talks 7/MDP/Client to one broker."""

    def __init__(self, broker, timeout_ms=2500, retries=3, use_dealer=False,
                 verbose=False, context=None):
        self.broker = broker
        self.timeout_ms = int(timeout_ms)
        self.retries = max(1, int(retries))
        self.use_dealer = use_dealer
        self.verbose = verbose
        self.ctx = context or zmq.Context.instance()
        self.sock = None
        self.poller = None
        self.reconnects = 0
        self._connect()

    def _log(self, what, frames=None):
        if self.verbose:
            line = "mdcli: " + what
            if frames is not None:
                line += " " + mdp.dump(frames)
            print(line, file=sys.stderr, flush=True)

    def _connect(self):
        """(Re)open the socket: a REQ socket stuck waiting for a lost reply
        cannot send again, so recovery means a fresh socket."""
        if self.sock is not None:
            self.poller.unregister(self.sock)
            self.sock.close(linger=0)
            self.reconnects += 1
        self.sock = self.ctx.socket(zmq.DEALER if self.use_dealer else zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.broker)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self._log("connected to %s" % self.broker)

    def _strip(self, frames):
        """Check a REPLY and return (service, body)."""
        if self.use_dealer:
            if not frames or frames[0] != b"":
                raise mdp.ProtocolError("reply without empty frame 0: %s" % mdp.dump(frames))
            frames = frames[1:]
        if len(frames) < 2:
            raise mdp.ProtocolError("short reply: %s" % mdp.dump(frames))
        if frames[0] != mdp.C_CLIENT1:
            raise mdp.ProtocolError("reply header %r, want %r" % (frames[0], mdp.C_CLIENT1))
        return frames[1], frames[2:]

    def send(self, service, body):
        """Send one request and return the reply body (a list of frames), or
        None when every retry timed out. Raises ProtocolError for a reply that
        is malformed or names another service."""
        if isinstance(service, str):
            service = service.encode()
        request = [mdp.C_CLIENT1, service] + mdp.as_frames(body)
        if self.use_dealer:
            request = [b""] + request  # 7/MDP: a DEALER client writes frame 0.
        for attempt in range(self.retries):
            self._log("send (attempt %d)" % (attempt + 1), request)
            self.sock.send_multipart(request)
            events = dict(self.poller.poll(self.timeout_ms))
            if events.get(self.sock) == zmq.POLLIN:
                frames = self.sock.recv_multipart()
                self._log("received", frames)
                got, reply = self._strip(frames)
                if got != service:
                    raise mdp.ProtocolError("reply for service %r, asked %r" % (got, service))
                return reply
            self._log("no reply within %d ms" % self.timeout_ms)
            self._connect()
        return None

    def extra(self, linger_ms):
        """Collect whatever else arrives within linger_ms (only meaningful on
        a DEALER socket: REQ silently discards replies it does not expect)."""
        out = []
        deadline = mdp.monotonic_ms() + linger_ms
        while True:
            left = deadline - mdp.monotonic_ms()
            if left <= 0:
                return out
            events = dict(self.poller.poll(left))
            if events.get(self.sock) == zmq.POLLIN:
                frames = self.sock.recv_multipart()
                self._log("unexpected", frames)
                out.append(frames)

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
