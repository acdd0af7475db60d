#!/usr/bin/python3
"""A minimal, plain 7/MDP (Majordomo 0.1) broker with 8/MMI mmi.service.

    pybroker.py ENDPOINT [--heartbeat-ms 2500] [--liveness 3] [--alarm 0]

It exists to test other Majordomo peers against an independent
implementation, so it follows the specifications and nothing else: one
ROUTER socket for clients and workers, one FIFO request queue and one idle
worker list per service, heartbeats to every worker (idle or busy) each
interval, removal of workers silent for liveness x interval (their request,
if any, goes back to the front of its queue), DISCONNECT for unexpected
commands and for workers that try to register an "mmi." service.
Only 0.1 is spoken: 18/MDP messages are invalid here and dropped.

MMI: mmi.service answers "200" if the named service has a registered
worker, else "404"; every other mmi.* answers "501".

On start it prints {"event": "bound", "endpoint": ...} (a wildcard port such
as tcp://127.0.0.1:* is resolved) on stdout. SIGTERM or SIGINT: DISCONNECT
every worker, print {"event": "exit", ...} with counters, exit 0.
"""

import argparse
import collections
import json
import os
import signal
import sys

import zmq

import mdp


def emit(event, **fields):
    sys.stdout.write(json.dumps(dict(event=event, **fields)) + "\n")
    sys.stdout.flush()


class Worker(object):
    def __init__(self, identity, service, expires_at):
        self.identity = identity
        self.service = service
        self.expires_at = expires_at
        self.request = None  # (client, body) while busy


class Service(object):
    def __init__(self, name):
        self.name = name
        self.requests = collections.deque()  # (client, body)
        self.waiting = collections.deque()   # idle Workers, LRU first
        self.workers = 0


class Stop(Exception):
    pass


class Broker(object):
    def __init__(self, endpoint, heartbeat_ms, liveness, verbose=False):
        self.heartbeat_ms = float(heartbeat_ms)
        self.liveness = int(liveness)
        self.verbose = verbose
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.services = {}
        self.workers = {}
        self.heartbeat_at = mdp.monotonic_ms() + self.heartbeat_ms
        self.counters = collections.Counter()

    def log(self, what, frames=None):
        if self.verbose:
            if frames is not None:
                what += " " + mdp.dump(frames)
            print("pybroker: " + what, file=sys.stderr, flush=True)

    def send(self, frames):
        self.log("send", frames)
        try:
            self.sock.send_multipart(frames)
        except zmq.ZMQError as e:  # Only with ROUTER_MANDATORY; kept safe.
            self.log("send failed: %s" % e)

    def expiry(self):
        return mdp.monotonic_ms() + self.heartbeat_ms * self.liveness

    def service(self, name):
        svc = self.services.get(name)
        if svc is None:
            svc = self.services[name] = Service(name)
        return svc

    # --- main loop -------------------------------------------------------

    def run(self):
        emit("bound", endpoint=self.endpoint, heartbeat_ms=self.heartbeat_ms,
             liveness=self.liveness)
        while True:
            timeout = max(0.0, self.heartbeat_at - mdp.monotonic_ms())
            events = dict(self.poller.poll(timeout))
            if events.get(self.sock) == zmq.POLLIN:
                # Drain what is waiting without starving the timers.
                for _ in range(100):
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames)
            if mdp.monotonic_ms() >= self.heartbeat_at:
                self.purge()
                for w in list(self.workers.values()):
                    self.send_worker(w.identity, mdp.W1_HEARTBEAT)
                    self.counters["heartbeats"] += 1
                self.heartbeat_at = mdp.monotonic_ms() + self.heartbeat_ms

    def handle(self, frames):
        self.log("received", frames)
        # [sender, empty, header, ...]: 7/MDP client and worker messages
        # both start with an empty frame (a REQ client adds it itself).
        if len(frames) < 3 or frames[1] != b"":
            self.counters["invalid"] += 1
            return
        sender, header, rest = frames[0], frames[2], frames[3:]
        if header == mdp.C_CLIENT1:
            self.client_message(sender, rest)
        elif header == mdp.W_WORKER1:
            self.worker_message(sender, rest)
        else:
            self.counters["invalid"] += 1

    # --- clients ---------------------------------------------------------

    def client_message(self, sender, rest):
        if len(rest) < 2 or not rest[0]:
            self.counters["invalid"] += 1
            return
        name, body = rest[0], rest[1:]
        self.counters["requests"] += 1
        if name.startswith(b"mmi."):
            self.mmi(sender, name, body)
            return
        svc = self.service(name)
        svc.requests.append((sender, body))
        self.dispatch(svc)

    def reply(self, client, service, body):
        self.send([client, b"", mdp.C_CLIENT1, service] + body)
        self.counters["replies"] += 1

    def mmi(self, client, name, body):
        if name == b"mmi.service":
            svc = self.services.get(body[0])
            code = b"200" if svc is not None and svc.workers > 0 else b"404"
        else:
            code = b"501"
        self.reply(client, name, [code])

    # --- workers ---------------------------------------------------------

    def send_worker(self, identity, command, rest=()):
        self.send([identity, b"", mdp.W_WORKER1, command] + list(rest))

    def worker_message(self, sender, rest):
        if not rest or len(rest[0]) != 1:
            self.counters["invalid"] += 1
            return
        command, rest = rest[0], rest[1:]
        w = self.workers.get(sender)
        if command == mdp.W1_DISCONNECT:
            if w is not None:
                self.remove(w, disconnect=False)
            return
        if w is None:
            if command == mdp.W1_READY and len(rest) == 1 and rest[0]:
                self.register(sender, rest[0])
            else:
                # Valid but unexpected (e.g. HEARTBEAT before READY).
                self.counters["unexpected"] += 1
                self.send_worker(sender, mdp.W1_DISCONNECT)
            return
        w.expires_at = self.expiry()  # Any command is a heartbeat.
        if command == mdp.W1_HEARTBEAT:
            return
        if command == mdp.W1_REPLY and w.request is not None and \
                len(rest) >= 3 and rest[0] == w.request[0] and rest[1] == b"":
            self.reply(rest[0], w.service.name, rest[2:])
            w.request = None
            self.idle(w)
            return
        # A second READY, a reply it does not owe, anything else.
        self.counters["unexpected"] += 1
        self.remove(w, disconnect=True)

    def register(self, sender, name):
        if name.startswith(b"mmi."):
            # 8/MMI: disconnect workers registering in the mmi. namespace.
            self.counters["mmi_refused"] += 1
            self.send_worker(sender, mdp.W1_DISCONNECT)
            return
        svc = self.service(name)
        w = Worker(sender, svc, self.expiry())
        self.workers[sender] = w
        svc.workers += 1
        self.counters["registered"] += 1
        self.idle(w)

    def idle(self, w):
        w.service.waiting.append(w)
        self.dispatch(w.service)

    def dispatch(self, svc):
        while svc.waiting and svc.requests:
            w = svc.waiting.popleft()
            client, body = svc.requests.popleft()
            w.request = (client, body)
            self.send_worker(w.identity, mdp.W1_REQUEST, [client, b""] + body)
            self.counters["dispatched"] += 1

    def remove(self, w, disconnect):
        if self.workers.get(w.identity) is not w:
            return
        if disconnect:
            self.send_worker(w.identity, mdp.W1_DISCONNECT)
        del self.workers[w.identity]
        svc = w.service
        svc.workers -= 1
        if w in svc.waiting:
            svc.waiting.remove(w)
        if w.request is not None:
            # Hand it to the next worker, ahead of newer requests.
            svc.requests.appendleft(w.request)
            w.request = None
            self.counters["requeued"] += 1
            self.dispatch(svc)
        self.counters["removed"] += 1

    def purge(self):
        now = mdp.monotonic_ms()
        for w in list(self.workers.values()):
            if now > w.expires_at:
                self.counters["expired"] += 1
                self.remove(w, disconnect=True)

    def close(self):
        for w in list(self.workers.values()):
            self.remove(w, disconnect=True)
        self.sock.close(linger=100)
        self.ctx.term()


def main(argv):
    ap = argparse.ArgumentParser(description="minimal 7/MDP broker")
    ap.add_argument("endpoint", help="e.g. tcp://127.0.0.1:5555 or tcp://127.0.0.1:*")
    ap.add_argument("--heartbeat-ms", type=int, default=2500)
    ap.add_argument("--liveness", type=int, default=3)
    ap.add_argument("--alarm", type=int, default=0,
                    help="hard time limit in seconds (0: none)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    if args.alarm > 0:
        def on_alarm(signum, frame):
            emit("alarm", seconds=args.alarm)
            os._exit(3)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(args.alarm)

    def on_stop(signum, frame):
        raise Stop()
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)

    try:
        broker = Broker(args.endpoint, args.heartbeat_ms, args.liveness, args.verbose)
    except zmq.ZMQError as e:
        emit("bind_failed", endpoint=args.endpoint, error=str(e))
        return 1
    try:
        broker.run()
    except Stop:
        pass
    workers = len(broker.workers)
    broker.close()
    emit("exit", workers=workers, **dict(broker.counters))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
