#!/usr/bin/env python3
"""Clients written with EventMQ's own client code (eventmq.sender and
eventmq.client.messages, from the tree on PYTHONPATH) for TestRealEventMQ.

    peer.py jobs FRONTEND N        defer_job N times, reply requested
    peer.py schedule FRONTEND      schedule emqjobs.add every second
    peer.py unschedule FRONTEND    unschedule it
    peer.py pubsub PUB_IN PUB_OUT  send_publish_request until a SUB gets it

Each prints one JSON line and exits 0 on success; a 20-second alarm stops a
hung peer."""
import json
import signal
import sys
import time

import zmq
from eventmq.client.messages import defer_job, schedule, send_publish_request
from eventmq.sender import Sender

signal.alarm(20)
mode, addr = sys.argv[1], sys.argv[2]
s = Sender()
s.connect(addr)

if mode == "jobs":
    n = int(sys.argv[3])
    ids = set()
    for i in range(n):
        ids.add(defer_job(s, "emqjobs.add", args=(i, 1000), reply_requested=True).encode())
    acks, values = 0, []
    while len(values) < n:
        m = s.zsocket.recv_multipart()
        # ['', 'eMQP/1.0', 'REPLY', msgid, ...]: [orig] when the request is
        # handed to a job manager, [result, orig] with the job's result.
        if m[2] != b"REPLY":
            continue
        if len(m) == 5 and m[4] in ids:
            acks += 1
        elif len(m) == 6 and m[5] in ids:
            values.append(json.loads(m[4])["value"])
    print(json.dumps({"acks": acks, "values": sorted(values)}))
elif mode in ("schedule", "unschedule"):
    mid = schedule(s, "emqjobs.add", interval_secs=1, args=(40, 2), unschedule=(mode == "unschedule"))
    time.sleep(0.5)  # Linger: the message must leave before exit.
    print(json.dumps({"msgid": mid}))
elif mode == "pubsub":
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"topic")
    sub.connect(sys.argv[3])
    got = None
    while got is None:
        # A SUB misses what is published before its subscription arrives.
        send_publish_request(s, "topic", ["update", "1"])
        if sub.poll(200):
            got = sub.recv_multipart()
    print(json.dumps({"topic": got[0].decode(), "message": got[1].decode()}))
