#!/usr/bin/env python3
"""Stand-ins for EventMQ's peers, speaking eMQP/1.0 through pyzmq exactly as
EventMQ's code frames it (DEALER sockets whose identity is a UUID4 string;
every message '', 'eMQP/1.0', COMMAND, msgid, arguments...).

    eventmq_peers.py jobmanager BACKEND CONCURRENCY JOBS HEARTBEAT_SECS
    eventmq_peers.py client FRONTEND REQUESTS
    eventmq_peers.py cli ADMIN
    eventmq_peers.py inform BACKEND QUEUE WAIT_SECS

With EMQP_CURVE_SERVER_KEY, EMQP_CURVE_PUBLIC and EMQP_CURVE_SECRET (Z85)
in the environment, every socket is a CURVE client with those keys (EventMQ
itself cannot do this; its peers stay plaintext).

Each prints one JSON line with what it saw and exits 0 on success. Every
mode arms a 20-second alarm so that a hung peer cannot hang the test."""
import json
import os
import signal
import sys
import time
import uuid

import zmq

PROTOCOL = b"eMQP/1.0"


def msgid(prefix=""):
    return (prefix + str(uuid.uuid4())).encode()


def dealer(ctx, addr):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.IDENTITY, str(uuid.uuid4()).encode())
    server_key = os.environ.get("EMQP_CURVE_SERVER_KEY")
    if server_key:
        s.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        s.setsockopt(zmq.CURVE_PUBLICKEY, os.environ["EMQP_CURVE_PUBLIC"].encode())
        s.setsockopt(zmq.CURVE_SECRETKEY, os.environ["EMQP_CURVE_SECRET"].encode())
    s.connect(addr)
    return s


def send(sock, command, *args):
    mid = msgid()
    sock.send_multipart([b"", PROTOCOL, command.encode(), mid] + [a if isinstance(a, bytes) else a.encode() for a in args],
                        flags=zmq.NOBLOCK)
    return mid


def jobmanager(addr, concurrency, jobs, hb_secs):
    """Mirrors eventmq.jobmanager.JobManager: INFORM, wait for ACK (dropping
    anything else, as EventMQ does), start the worker processes on the
    first HEARTBEAT, one READY per process, REPLY only for reply-requested,
    READY after each job, HEARTBEAT every interval."""
    ctx = zmq.Context()
    s = dealer(ctx, addr)
    inform = send(s, "INFORM", json.dumps([[10, "default"]]), "worker")
    while True:
        f = s.recv_multipart()
        if f[2] == b"ACK":
            assert f[4] == inform, f
            break
    last_sent = time.monotonic()
    last_recv = time.monotonic()
    workers_started = False
    handled = 0
    replies = 0
    heartbeats = 0
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    while handled < jobs:
        events = dict(poller.poll(50))
        now = time.monotonic()
        if s in events:
            f = s.recv_multipart()
            last_recv = now
            cmd = f[2]
            if cmd == b"HEARTBEAT":
                heartbeats += 1
                float(f[4])  # A unix timestamp.
                if not workers_started:
                    workers_started = True
                    for _ in range(concurrency):
                        send(s, "READY")
                        last_sent = now
            elif cmd == b"REQUEST":
                assert workers_started, "REQUEST before any READY"
                mid, headers, payload = f[3], f[5].decode(), json.loads(f[6])
                params = payload[1]
                result = sum(params.get("args", []))
                if "reply-requested" in headers:
                    send(s, "REPLY", json.dumps({"value": result}), mid)
                    replies += 1
                send(s, "READY")
                last_sent = now
                handled += 1
            elif cmd in (b"DISCONNECT", b"KBYE"):
                break
        if now - last_sent >= hb_secs:
            send(s, "HEARTBEAT", str(time.time()))
            last_sent = now
        if now - last_recv > 5:
            print(json.dumps({"error": "router silent"}))
            return 1
    send(s, "KBYE")
    time.sleep(0.1)
    print(json.dumps({"handled": handled, "replies": replies, "heartbeats": heartbeats}))
    return 0


def client(addr, n):
    """eventmq.client.messages.send_request: queue, comma-separated headers,
    JSON ['run', {...}]; collects the router's REPLYs."""
    ctx = zmq.Context()
    s = dealer(ctx, addr)
    sent = {}
    for i in range(n):
        headers = "reply-requested" if i % 2 == 0 else ""
        payload = json.dumps(["run", {"callable": "add", "path": "tasks", "args": [i, 1],
                                      "kwargs": {}, "class_args": [], "class_kwargs": {}}])
        sent[send(s, "REQUEST", "default", headers, payload)] = i
    acks, results = 0, {}
    deadline = time.monotonic() + 15
    want_results = (n + 1) // 2
    while (acks < n or len(results) < want_results) and time.monotonic() < deadline:
        if not s.poll(200):
            continue
        f = s.recv_multipart()
        assert f[0] == b"" and f[1] == PROTOCOL and f[2] == b"REPLY", f
        if len(f) == 5:  # The router's acknowledgement: REPLY [msgid].
            assert f[4] in sent, f
            acks += 1
        else:  # The job manager's REPLY, forwarded: [result, msgid].
            i = sent[f[5]]
            results[i] = json.loads(f[4])["value"]
    ok = acks == n and all(results.get(i) == i + 1 for i in range(0, n, 2))
    print(json.dumps({"acks": acks, "results": len(results), "ok": ok}))
    return 0 if ok else 1


def cli(addr):
    """bin/emq-cli: HELLO on connect (no answer read), then STATUS and
    ROUTER_SHOW_WORKERS, each answered REPLY whose frame 4 is JSON."""
    ctx = zmq.Context()
    s = dealer(ctx, addr)
    out = {}

    def ask(cmd):
        s.send_multipart([b"", PROTOCOL, cmd.encode(), msgid("admin:")])
        if not s.poll(5000):
            raise SystemExit("no answer to " + cmd)
        return json.loads(s.recv_multipart()[4])

    s.send_multipart([b"", PROTOCOL, b"HELLO", msgid("admin:")])
    out["status_keys"] = sorted(ask("STATUS").keys())
    out["workers"] = ask("ROUTER_SHOW_WORKERS")
    out["schedulers"] = ask("ROUTER_SHOW_SCHEDULERS")
    print(json.dumps(out))
    return 0


def inform(addr, queue, wait_secs):
    """A job manager's INFORM for one queue; reports whether the router
    acknowledged it within wait_secs (a refused handshake or a policy that
    refuses the queue both leave it unanswered)."""
    ctx = zmq.Context()
    s = dealer(ctx, addr)
    mid = send(s, "INFORM", json.dumps([[10, queue]]), "worker")
    deadline = time.monotonic() + wait_secs
    ack = False
    while not ack and time.monotonic() < deadline:
        if not s.poll(100):
            continue
        f = s.recv_multipart()
        ack = f[2] == b"ACK" and f[4] == mid
    if ack:
        send(s, "KBYE")
        time.sleep(0.1)
    print(json.dumps({"ack": ack}))
    return 0


def main():
    signal.alarm(20)
    mode = sys.argv[1]
    if mode == "jobmanager":
        return jobmanager(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    if mode == "client":
        return client(sys.argv[2], int(sys.argv[3]))
    if mode == "cli":
        return cli(sys.argv[2])
    if mode == "inform":
        return inform(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    sys.exit(main())
