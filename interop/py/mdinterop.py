#!/usr/bin/python3
"""Interoperability driver: Majordomo clients and workers in Python.

    mdinterop.py client --endpoint EP --version 1|2 [--socket req|dealer]
                        (--service S --count N [--prefix P] | --requests JSON)
                        [--timeout-ms T] [--retries R] [--linger-ms L]
                        [--expect-echo]
    mdinterop.py worker --endpoint EP --version 1|2 --service S
                        --heartbeat-ms H [--liveness 3] [--partials K]
                        [--mode echo|hold] [--max N] [--tag T]
                        [--exit-on-disconnect] [--expect-disconnect-ms MS]

Every line on stdout is one JSON object with an "event" key; diagnostics go
to stderr. Exit status: 0 success, 1 failure (timeout, wrong or extra reply,
missing DISCONNECT, protocol error), 2 usage, 3 the global alarm fired.

Client events:
    {"event": "reply", "i": 0, "service": "echo", "request": [...],
     "partials": [[...], ...], "final": [...], "ms": 1.2}
    {"event": "timeout", "i": 3, ...}       no FINAL in time
    {"event": "extra", "i": 3, "frames": [...]}   a message after the reply
    {"event": "mismatch", "i": 3, ...}      --expect-echo and final != request
    {"event": "done", "replies": N, "failures": F}
Worker events:
    ready, request {i, body}, replied {i}, holding {i}, heartbeat {n},
    disconnect {n}, broker_lost, invalid {error}, request_while_busy,
    exit {reason, requests, heartbeats_sent, heartbeats_recv}

Partial replies from a worker started with --partials K are, in order,
["part-1", body...] ... ["part-K", body...]; the FINAL is the request body,
followed by the --tag frame if one was given.
"""

import argparse
import json
import os
import signal
import sys

import mdp

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_ALARM = 0, 1, 2, 3


def emit(event, **fields):
    fields = dict(event=event, **fields)
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def texts(frames):
    return [mdp.text(f) for f in frames]


def arm_alarm(seconds):
    """Never hang: whatever happens, the process ends after `seconds`."""
    def on_alarm(signum, frame):
        emit("alarm", seconds=seconds)
        sys.stderr.flush()
        os._exit(EXIT_ALARM)
    if seconds > 0:
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(seconds)


class Terminated(Exception):
    pass


def on_sigterm(signum, frame):
    raise Terminated()


# --- client -----------------------------------------------------------------

def build_requests(args):
    if args.requests:
        reqs = json.loads(args.requests)
        if not isinstance(reqs, list) or not reqs:
            raise SystemExit("--requests must be a non-empty JSON list")
        out = []
        for r in reqs:
            if not isinstance(r, list) or len(r) < 2:
                raise SystemExit("each request is [service, frame, ...]")
            out.append((r[0].encode(), [f.encode() for f in r[1:]]))
        return out
    if not args.service:
        raise SystemExit("client needs --service or --requests")
    return [(args.service.encode(), [("%s-%d" % (args.prefix, i)).encode()])
            for i in range(args.count)]


def run_client(args):
    import zmq  # noqa: F401  (import errors surface here, clearly)
    reqs = build_requests(args)
    if args.version == 1:
        from mdcliapi import MajorDomoClient
        cli = MajorDomoClient(args.endpoint, timeout_ms=args.timeout_ms,
                              retries=args.retries,
                              use_dealer=(args.socket == "dealer"),
                              verbose=args.verbose)
    else:
        if args.socket == "req":
            raise SystemExit("18/MDP clients must use a DEALER socket")
        from mdcliapi2 import MajorDomoClient2
        cli = MajorDomoClient2(args.endpoint, timeout_ms=args.timeout_ms,
                               verbose=args.verbose)
    failures = 0
    replies = 0
    for i, (service, body) in enumerate(reqs):
        start = mdp.monotonic_ms()
        common = dict(i=i, service=mdp.text(service), request=texts(body))
        try:
            if args.version == 1:
                partials, final = [], cli.send(service, body)
            else:
                partials, final = cli.request(service, body)
        except mdp.ProtocolError as e:
            emit("protocol_error", error=str(e), **common)
            failures += 1
            break
        ms = round(mdp.monotonic_ms() - start, 3)
        if final is None:
            emit("timeout", partials=[texts(p) for p in partials], ms=ms, **common)
            failures += 1
            break  # The socket state is unknown; later replies would be misread.
        replies += 1
        emit("reply", partials=[texts(p) for p in partials], final=texts(final),
             ms=ms, **common)
        if args.expect_echo and final != body:
            emit("mismatch", final=texts(final), **common)
            failures += 1
        if args.linger_ms > 0:
            for extra in cli.extra(args.linger_ms):
                emit("extra", i=i, frames=texts(extra))
                failures += 1
    emit("done", replies=replies, failures=failures,
         reconnects=getattr(cli, "reconnects", 0))
    cli.close()
    return EXIT_FAIL if failures else EXIT_OK


# --- worker -----------------------------------------------------------------

def run_worker(args):
    import zmq  # noqa: F401
    kw = dict(heartbeat_ms=args.heartbeat_ms, liveness=args.liveness,
              reconnect_ms=args.reconnect_ms, verbose=args.verbose,
              on_event=emit,
              exit_on_disconnect=(args.exit_on_disconnect or
                                  args.expect_disconnect_ms > 0))
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.version == 1:
        from mdwrkapi import MajorDomoWorker
        wrk = MajorDomoWorker(args.endpoint, args.service, **kw)
    else:
        from mdwrkapi2 import MajorDomoWorker2
        wrk = MajorDomoWorker2(args.endpoint, args.service, **kw)
    if args.expect_disconnect_ms > 0:
        wrk.deadline = mdp.monotonic_ms() + args.expect_disconnect_ms

    served = 0
    status, reason = EXIT_OK, "closed"
    try:
        reply = None
        while True:
            got = wrk.recv(reply)
            reply = None
            if got is None:
                if wrk.deadline_passed:
                    status, reason = EXIT_FAIL, "deadline"
                else:
                    reason = "disconnected"
                break
            client, body = got
            emit("request", i=served, client=client.hex(), body=texts(body))
            if args.mode == "hold":
                # Keep the request and never answer: stay alive and keep
                # heartbeating until killed. The broker must not send us
                # anything but heartbeats meanwhile.
                emit("holding", i=served)
                while True:
                    again = wrk.recv()
                    if again is None:
                        break
                    emit("request_while_busy", client=again[0].hex(),
                         body=texts(again[1]))
                if wrk.deadline_passed:
                    status, reason = EXIT_FAIL, "deadline"
                else:
                    reason = "disconnected"
                break
            if args.version == 2:
                for k in range(1, args.partials + 1):
                    wrk.partial([("part-%d" % k).encode()] + body)
            final = list(body)
            if args.tag:
                final.append(args.tag.encode())
            reply = final
            served += 1
            if args.max and served >= args.max:
                # Send the last reply ourselves, then leave.
                if args.version == 2:
                    wrk.final(reply)
                else:
                    wrk._reply(wrk.REPLY, reply)
                emit("replied", i=served - 1)
                reason = "max"
                break
            emit("replied", i=served - 1)
    except Terminated:
        reason = "sigterm"
    if args.expect_disconnect_ms > 0 and wrk.disconnects_recv == 0:
        status = EXIT_FAIL
    wrk.close(send_disconnect=(reason in ("max", "sigterm")))
    emit("exit", reason=reason, requests=served,
         heartbeats_sent=wrk.heartbeats_sent,
         heartbeats_recv=wrk.heartbeats_recv,
         disconnects_recv=wrk.disconnects_recv, connects=wrk.connects)
    return status


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--endpoint", required=True)
        p.add_argument("--version", type=int, choices=(1, 2), default=1)
        p.add_argument("--verbose", action="store_true")
        p.add_argument("--alarm", type=int, default=20,
                       help="hard time limit in seconds (0: none)")

    c = sub.add_parser("client")
    common(c)
    c.add_argument("--socket", choices=("req", "dealer"), default=None)
    c.add_argument("--service")
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--prefix", default="req")
    c.add_argument("--requests", help='JSON: [["service", "frame", ...], ...]')
    c.add_argument("--timeout-ms", type=int, default=5000)
    c.add_argument("--retries", type=int, default=1)
    c.add_argument("--linger-ms", type=int, default=0,
                   help="after each reply, fail on anything else arriving")
    c.add_argument("--expect-echo", action="store_true")

    w = sub.add_parser("worker")
    common(w)
    w.add_argument("--service", required=True)
    w.add_argument("--heartbeat-ms", type=int, required=True)
    w.add_argument("--liveness", type=int, default=3)
    w.add_argument("--reconnect-ms", type=int, default=1000)
    w.add_argument("--partials", type=int, default=0)
    w.add_argument("--mode", choices=("echo", "hold"), default="echo")
    w.add_argument("--max", type=int, default=0)
    w.add_argument("--tag", default="")
    w.add_argument("--exit-on-disconnect", action="store_true")
    w.add_argument("--expect-disconnect-ms", type=int, default=0)

    args = ap.parse_args(argv)
    arm_alarm(args.alarm)
    if args.cmd == "client":
        if args.socket is None:
            args.socket = "req" if args.version == 1 else "dealer"
        return run_client(args)
    if args.partials and args.version != 2:
        ap.error("--partials needs --version 2")
    return run_worker(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
