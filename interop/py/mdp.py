"""Majordomo Protocol constants and small helpers shared by the peers.

7/MDP is Majordomo 0.1 (MDPC01/MDPW01), 18/MDP is Majordomo 0.2
(MDPC02/MDPW02). The values below are taken from the two specifications
(/work/shared/specs/7-mdp.txt and 18-mdp.txt).
"""

import time

# Protocol headers (frame 1 of every 0.1 message, frame 0 of every 0.2 one).
C_CLIENT1 = b"MDPC01"
W_WORKER1 = b"MDPW01"
C_CLIENT2 = b"MDPC02"
W_WORKER2 = b"MDPW02"

# 7/MDP worker commands.
W1_READY = b"\x01"
W1_REQUEST = b"\x02"
W1_REPLY = b"\x03"
W1_HEARTBEAT = b"\x04"
W1_DISCONNECT = b"\x05"

# 18/MDP worker commands.
W2_READY = b"\x01"
W2_REQUEST = b"\x02"
W2_PARTIAL = b"\x03"
W2_FINAL = b"\x04"
W2_HEARTBEAT = b"\x05"
W2_DISCONNECT = b"\x06"

# 18/MDP client commands (7/MDP client messages carry no command frame).
C2_REQUEST = b"\x01"
C2_PARTIAL = b"\x02"
C2_FINAL = b"\x03"

W1_NAMES = {W1_READY: "READY", W1_REQUEST: "REQUEST", W1_REPLY: "REPLY",
            W1_HEARTBEAT: "HEARTBEAT", W1_DISCONNECT: "DISCONNECT"}
W2_NAMES = {W2_READY: "READY", W2_REQUEST: "REQUEST", W2_PARTIAL: "PARTIAL",
            W2_FINAL: "FINAL", W2_HEARTBEAT: "HEARTBEAT",
            W2_DISCONNECT: "DISCONNECT"}


class ProtocolError(Exception):
    """A peer sent something the specification does not allow."""


def monotonic_ms():
    return time.monotonic() * 1000.0


def as_frames(body):
    """Normalise a request/reply body to a list of bytes frames."""
    if body is None:
        return []
    if isinstance(body, (bytes, bytearray)):
        return [bytes(body)]
    if isinstance(body, str):
        return [body.encode()]
    out = []
    for f in body:
        if isinstance(f, str):
            f = f.encode()
        out.append(bytes(f))
    return out


def text(frame):
    """Render one frame for logs and JSON output."""
    return frame.decode("utf-8", "backslashreplace")


def dump(frames):
    """A one-line rendering of a multipart message, for --verbose logs."""
    parts = []
    for f in frames:
        if f and all(32 <= c < 127 for c in f):
            parts.append(repr(f.decode()))
        else:
            parts.append("0x" + f.hex() if f else "''")
    return "[" + ", ".join(parts) + "]"
