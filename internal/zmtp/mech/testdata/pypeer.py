# A libzmq peer (through pyzmq) for the mechanism interop tests.
# Usage: pypeer.py '<json config>'; see interop_test.go for the fields.
# It prints one event per line: PORT n, KEYS pub sec, PROPS {...}, OK, EVENT name value, DONE.
import json
import signal
import sys

import zmq
import zmq.auth
import zmq.utils.monitor
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

signal.alarm(25)  # never outlive a test run


def say(*words):
    print(*words, flush=True)


def key(hexkey):
    return z85.encode(bytes.fromhex(hexkey))


cfg = json.loads(sys.argv[1])
if cfg.get("mode") == "keygen":
    pub, sec = zmq.curve_keypair()
    say("KEYS", z85.decode(pub).hex(), z85.decode(sec).hex())
    sys.exit(0)

ctx = zmq.Context()
sock = ctx.socket(zmq.ROUTER if cfg["type"] == "ROUTER" else zmq.DEALER)
sock.linger = 2000
if cfg.get("routing_id"):
    sock.routing_id = cfg["routing_id"].encode()
mech = cfg["mech"]
auth = None
zap = cfg.get("zap")
if zap is not None:
    auth = ThreadAuthenticator(ctx)
    auth.start()
    if zap.get("deny"):
        auth.deny(*zap["deny"])
    # pyzmq's authenticator looks credentials up by the socket's ZAP domain
    # ("*" only stands for an empty one).
    domain = zap.get("domain", "global")
    if mech == "PLAIN":
        auth.configure_plain(domain=domain, passwords=zap.get("passwords", {}))
    if mech == "CURVE":
        auth.configure_curve(domain=domain, location=zmq.auth.CURVE_ALLOW_ANY)
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

mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
poller.register(mon, zmq.POLLIN)
names = {zmq.EVENT_HANDSHAKE_FAILED_AUTH: "HANDSHAKE_FAILED_AUTH",
         zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "HANDSHAKE_FAILED_PROTOCOL",
         zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "HANDSHAKE_FAILED_NO_DETAIL",
         zmq.EVENT_HANDSHAKE_SUCCEEDED: "HANDSHAKE_SUCCEEDED"}


def wait(stop_on_failure):
    """Waits for a message on sock, reporting monitor events; returns False on a handshake failure."""
    while True:
        for s, _ in poller.poll(20000):
            if s is mon:
                ev = zmq.utils.monitor.recv_monitor_message(mon)
                say("EVENT", names.get(ev["event"], ev["event"]), ev["value"])
                if stop_on_failure and ev["event"] != zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    return False
            else:
                return True


def props(frame):
    out = {}
    for name in ("Socket-Type", "Identity", "User-Id", "X-Test"):
        try:
            out[name] = frame.get(name)
        except zmq.ZMQError:
            pass
    return out


if cfg["role"] == "bind":
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    say("PORT", port)
    for _ in range(cfg.get("count", 0)):
        if not wait(True):
            break
        frames = sock.recv_multipart(copy=False)
        say("PROPS", json.dumps(dict(props(frames[1]), routing_id=frames[0].bytes.hex())))
        sock.send_multipart([frames[0], b"echo"] + [f.bytes for f in frames[1:]])
    else:
        say("OK")
else:
    sock.connect(cfg["endpoint"])
    if cfg.get("expect_failure"):
        wait(True)
    else:
        sizes = cfg.get("sizes", [5])
        msgs = [[bytes([65 + i % 26]) * n] for i, n in enumerate(sizes)]
        msgs.append([b"multi", b"", b"x" * 300])
        ok = True
        for m in msgs:
            sock.send_multipart(m)
            if not wait(True):
                ok = False
                break
            reply = sock.recv_multipart(copy=False)
            if [f.bytes for f in reply] != [b"echo"] + m:
                say("MISMATCH", len(reply), [len(f.bytes) for f in reply])
                ok = False
                break
            say("PROPS", json.dumps(props(reply[0])))
        if ok:
            say("OK")
say("DONE")
if auth is not None:
    auth.stop()
sock.close()
mon.close()
ctx.term()
