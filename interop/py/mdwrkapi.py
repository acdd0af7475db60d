"""Majordomo 0.1 (7/MDP) worker API.

In the manner of the Guide's mdwrkapi: one DEALER socket to the broker, a
READY on connect, recv(reply) that sends the previous reply and waits for the
next request, heartbeats in both directions, and a fresh socket when the
broker goes silent or sends DISCONNECT.

Heartbeating is kept on two clocks rather than by counting poll timeouts:
  * heartbeat_at: when we must next send something. Any command we send
    counts as a heartbeat, so it is pushed back by every send; when it
    passes we send HEARTBEAT.
  * expires_at: liveness x interval after the broker last sent us anything.
    When it passes the broker is presumed dead and we reconnect.
A HEARTBEAT from the broker is answered at once if we have been quiet for
half an interval, so the broker hears from us at least every interval.

MajorDomoWorker2 (mdwrkapi2.py) reuses all of this with 18/MDP framing.
"""

import sys
import time

import zmq

import mdp


class MajorDomoWorker(object):
    """Talks 7/MDP/Worker to one broker."""

    HEADER = mdp.W_WORKER1
    READY = mdp.W1_READY
    REQUEST = mdp.W1_REQUEST
    REPLY = mdp.W1_REPLY
    HEARTBEAT = mdp.W1_HEARTBEAT
    DISCONNECT = mdp.W1_DISCONNECT
    NAMES = mdp.W1_NAMES

    def __init__(self, broker, service, heartbeat_ms=2500, liveness=3,
                 reconnect_ms=2500, verbose=False, on_event=None,
                 exit_on_disconnect=False, context=None):
        self.broker = broker
        self.service = service.encode() if isinstance(service, str) else service
        self.heartbeat_ms = float(heartbeat_ms)
        self.liveness = int(liveness)
        self.reconnect_ms = float(reconnect_ms)
        self.verbose = verbose
        self.on_event = on_event or (lambda name, **kw: None)
        self.exit_on_disconnect = exit_on_disconnect
        self.ctx = context or zmq.Context.instance()
        self.sock = None
        self.poller = None
        self.reply_to = None
        self.heartbeat_at = 0.0
        self.expires_at = 0.0
        self.connects = 0
        self.heartbeats_sent = 0
        self.heartbeats_recv = 0
        self.disconnects_recv = 0
        self.closed = False
        # Optional absolute monotonic_ms after which recv() gives up and
        # returns None (used by callers that expect a DISCONNECT).
        self.deadline = None
        self.deadline_passed = False
        self._connect()

    # --- framing (overridden for 18/MDP) ---------------------------------

    def _frame(self, command, rest):
        """7/MDP worker commands start with an empty frame."""
        return [b"", self.HEADER, command] + rest

    def _parse(self, frames):
        """Return (command, rest) for a message from the broker."""
        if len(frames) < 3 or frames[0] != b"":
            raise mdp.ProtocolError("no empty frame 0: %s" % mdp.dump(frames))
        if frames[1] != self.HEADER:
            raise mdp.ProtocolError("header %r, want %r" % (frames[1], self.HEADER))
        return frames[2], frames[3:]

    # ---------------------------------------------------------------------

    def _log(self, what, frames=None):
        if self.verbose:
            line = "mdwrk(%s): %s" % (self.HEADER.decode(), what)
            if frames is not None:
                line += " " + mdp.dump(frames)
            print(line, file=sys.stderr, flush=True)

    def _send(self, command, rest=()):
        msg = self._frame(command, list(rest))
        self._log("send %s" % self.NAMES.get(command, "?"), msg)
        self.sock.send_multipart(msg)
        # Any command is a heartbeat (7/MDP "Heartbeating").
        self.heartbeat_at = mdp.monotonic_ms() + self.heartbeat_ms
        if command == self.HEARTBEAT:
            self.heartbeats_sent += 1

    def _connect(self):
        """Open a new socket and register with READY."""
        if self.sock is not None:
            self.poller.unregister(self.sock)
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.broker)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.reply_to = None
        self.connects += 1
        self._send(self.READY, [self.service])
        self.expires_at = mdp.monotonic_ms() + self.heartbeat_ms * self.liveness
        self.on_event("ready", service=mdp.text(self.service), connects=self.connects)

    def _reply(self, command, body):
        if self.reply_to is None:
            raise mdp.ProtocolError("no request to reply to")
        self._send(command, [self.reply_to, b""] + mdp.as_frames(body))

    def recv(self, reply=None):
        """Send reply (if any) for the request in hand, then wait for the
        next request. Returns (client, body), or None once the worker is
        closed (DISCONNECT received with exit_on_disconnect set)."""
        if reply is not None:
            self._reply(self.REPLY, reply)
            self.reply_to = None
        return self._wait()

    def _wait(self):
        while not self.closed:
            now = mdp.monotonic_ms()
            wake = min(self.heartbeat_at, self.expires_at)
            if self.deadline is not None:
                if now >= self.deadline:
                    self.deadline_passed = True
                    return None
                wake = min(wake, self.deadline)
            timeout = max(0.0, wake - now)
            events = dict(self.poller.poll(timeout))
            if events.get(self.sock) == zmq.POLLIN:
                got = self._handle(self.sock.recv_multipart())
                if got is not None:
                    return got
                if self.closed:
                    return None
            now = mdp.monotonic_ms()
            if now >= self.expires_at:
                self.on_event("broker_lost", silent_ms=int(self.heartbeat_ms * self.liveness))
                pause = self.reconnect_ms
                if self.deadline is not None:
                    pause = max(0.0, min(pause, self.deadline - now))
                time.sleep(pause / 1000.0)
                self._connect()
            elif now >= self.heartbeat_at:
                self._send(self.HEARTBEAT)
        return None

    def _handle(self, frames):
        """Handle one message from the broker; return (client, body) for a
        REQUEST, else None."""
        self._log("received", frames)
        now = mdp.monotonic_ms()
        try:
            command, rest = self._parse(frames)
        except mdp.ProtocolError as e:
            self.on_event("invalid", error=str(e))
            return None
        # Anything from the broker shows it is alive.
        self.expires_at = now + self.heartbeat_ms * self.liveness
        if command == self.REQUEST:
            if len(rest) < 3 or rest[1] != b"":
                self.on_event("invalid", error="bad REQUEST envelope: %s" % mdp.dump(frames))
                return None
            self.reply_to = rest[0]
            return rest[0], rest[2:]
        if command == self.HEARTBEAT:
            self.heartbeats_recv += 1
            self.on_event("heartbeat", n=self.heartbeats_recv)
            # Answer at once unless we spoke within the last half interval.
            if now >= self.heartbeat_at - self.heartbeat_ms / 2:
                self._send(self.HEARTBEAT)
            return None
        if command == self.DISCONNECT:
            self.disconnects_recv += 1
            self.on_event("disconnect", n=self.disconnects_recv)
            if self.exit_on_disconnect:
                self.close(send_disconnect=False)
            else:
                # The spec: close the socket and reconnect on a new one.
                self._connect()
            return None
        self.on_event("invalid", error="unexpected command 0x%s" % command.hex())
        return None

    def close(self, send_disconnect=True):
        """Leave: DISCONNECT (unless the broker told us to go) and close."""
        if self.closed:
            return
        if send_disconnect and self.sock is not None:
            try:
                self._send(self.DISCONNECT)
            except zmq.ZMQError:
                pass
        if self.sock is not None:
            # A short linger so that our DISCONNECT gets out.
            self.sock.close(linger=200 if send_disconnect else 0)
            self.sock = None
        self.closed = True
