# A libzmq peer (through pyzmq) for the engine's interop tests.
# Usage: peer.py '<json config>'; interop_test.go documents the fields.
# It prints one event per line: ENDPOINT e, KEYS pub sec, EVENT name,
# SUB hex, GOT hex, OK, ERR text. It exits on its own within 25 s.
import json
import signal
import sys
import time

import zmq
import zmq.auth
import zmq.utils.monitor
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

signal.alarm(25)  # never outlive a test run


def say(*words):
    print(*words, flush=True)


def fail(text):
    say("ERR", text)
    sys.exit(1)


def key(hexkey):
    return z85.encode(bytes.fromhex(hexkey))


cfg = json.loads(sys.argv[1])
mode = cfg["mode"]
if mode == "keygen":
    pub, sec = zmq.curve_keypair()
    say("KEYS", z85.decode(pub).hex(), z85.decode(sec).hex())
    sys.exit(0)

ctx = zmq.Context()
types = {"ROUTER": zmq.ROUTER, "DEALER": zmq.DEALER, "REQ": zmq.REQ, "PUB": zmq.PUB,
         "XPUB": zmq.XPUB, "SUB": zmq.SUB}
sock = ctx.socket(types[cfg["type"]])
sock.linger = 1000
if cfg.get("identity"):
    sock.routing_id = cfg["identity"].encode()
if cfg.get("hb_ivl"):
    sock.setsockopt(zmq.HEARTBEAT_IVL, cfg["hb_ivl"])
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, cfg["hb_timeout"])
    sock.setsockopt(zmq.HEARTBEAT_TTL, cfg.get("hb_ttl", cfg["hb_timeout"]))

mech = cfg.get("mech", "NULL")
zap = cfg.get("zap")
auth = None
if zap is not None:
    auth = ThreadAuthenticator(ctx)
    auth.start()
    domain = zap.get("domain", "global")
    if mech == "PLAIN":
        auth.configure_plain(domain=domain, passwords=zap.get("passwords", {}))
    elif mech == "CURVE":
        if zap.get("allow") is None:
            auth.configure_curve(domain=domain, location=zmq.auth.CURVE_ALLOW_ANY)
        else:
            # pyzmq reads allowed keys from certificate files; the test
            # passes a directory of them.
            auth.configure_curve(domain=domain, location=zap["allow"])
    sock.zap_domain = domain.encode()
if mech == "PLAIN":
    if cfg.get("server"):
        sock.plain_server = True
    else:
        sock.plain_username = cfg["user"].encode()
        sock.plain_password = cfg["password"].encode()
elif mech == "CURVE":
    if cfg.get("server"):
        sock.curve_server = True
        sock.curve_secretkey = key(cfg["secret"])
        sock.curve_publickey = key(cfg["public"])
    else:
        sock.curve_serverkey = key(cfg["server_key"])
        sock.curve_secretkey = key(cfg["secret"])
        sock.curve_publickey = key(cfg["public"])

event_names = {zmq.EVENT_HANDSHAKE_FAILED_AUTH: "HANDSHAKE_FAILED_AUTH",
               zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "HANDSHAKE_FAILED_PROTOCOL",
               zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "HANDSHAKE_FAILED_NO_DETAIL",
               zmq.EVENT_HANDSHAKE_SUCCEEDED: "HANDSHAKE_SUCCEEDED",
               zmq.EVENT_DISCONNECTED: "DISCONNECTED"}
mon = sock.get_monitor_socket(sum(event_names))
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
poller.register(mon, zmq.POLLIN)
disconnects = 0


def events():
    global disconnects
    while mon.poll(0):
        ev = zmq.utils.monitor.recv_monitor_message(mon)
        name = event_names.get(ev["event"], str(ev["event"]))
        if name == "DISCONNECTED":
            disconnects += 1
        say("EVENT", name)


def recv(timeout_ms=15000):
    """Returns the next message, reporting monitor events meanwhile."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        ready = dict(poller.poll(100))
        events()
        if sock in ready:
            return sock.recv_multipart()
    fail("no message within %d ms" % timeout_ms)


if cfg.get("bind"):
    sock.bind(cfg["bind"])
    say("ENDPOINT", sock.last_endpoint.decode())
else:
    sock.connect(cfg["connect"])

for t in cfg.get("subscribe", []):
    sock.setsockopt(zmq.SUBSCRIBE, bytes.fromhex(t))


def messages():
    """The client's messages: two frames of each size, then one of many frames."""
    out = [[b"size", b"x" * n] for n in cfg.get("sizes", [])]
    if cfg.get("frames"):
        out.append([b"%d" % i for i in range(cfg["frames"])])
    return out


if mode == "echo":
    for _ in range(cfg["count"]):
        m = recv()
        sock.send_multipart(m)
    events()
    say("OK")
elif mode == "client":
    for m in messages():
        sock.send_multipart(m)
        r = recv()
        if r != m:
            fail("echo differs: sent %s, got %s" % ([len(f) for f in m][:4], [len(f) for f in r][:4]))
    say("OK")
elif mode == "refused":
    # Wait until the handshake fails; the engine side refuses us.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if mon.poll(100):
            ev = zmq.utils.monitor.recv_monitor_message(mon)
            name = event_names.get(ev["event"], str(ev["event"]))
            say("EVENT", name, ev["value"])
            if name.startswith("HANDSHAKE_FAILED"):
                say("OK")
                break
elif mode == "idle":
    # Stay connected, heartbeating, for idle_ms; report disconnections;
    # then prove the connection still works with one round trip.
    deadline = time.monotonic() + cfg["idle_ms"] / 1000
    while time.monotonic() < deadline:
        mon.poll(50)
        events()
    say("DISCONNECTS", disconnects)
    sock.send_multipart([b"alive"])
    if recv() != [b"alive"]:
        fail("bad reply")
    say("OK")
elif mode == "xpub":
    # Report the subscription as libzmq delivers it, then publish the
    # topics until told to stop (stdin closes).
    m = recv()
    say("SUB", m[0].hex())
    import select
    while True:
        for t in cfg["publish"]:
            sock.send_multipart([bytes.fromhex(t), b"body"])
        r, _, _ = select.select([sys.stdin], [], [], 0.02)
        if r:
            break
    say("OK")
elif mode == "sub":
    for _ in range(cfg["count"]):
        m = recv()
        say("GOT", m[0].hex())
    say("OK")
else:
    fail("unknown mode " + mode)
if auth is not None:
    auth.stop()
