"""Majordomo 0.2 (18/MDP) worker API.

Same connection, heartbeat and reconnect logic as the 0.1 worker, with
18/MDP framing: no empty frame 0, header "MDPW02", and a request answered by
zero or more PARTIALs followed by exactly one FINAL.
"""

import mdp
from mdwrkapi import MajorDomoWorker


class MajorDomoWorker2(MajorDomoWorker):
    """Talks 18/MDP/Worker to one broker."""

    HEADER = mdp.W_WORKER2
    READY = mdp.W2_READY
    REQUEST = mdp.W2_REQUEST
    REPLY = mdp.W2_FINAL  # recv(reply) sends a FINAL.
    PARTIAL = mdp.W2_PARTIAL
    FINAL = mdp.W2_FINAL
    HEARTBEAT = mdp.W2_HEARTBEAT
    DISCONNECT = mdp.W2_DISCONNECT
    NAMES = mdp.W2_NAMES

    def _frame(self, command, rest):
        return [self.HEADER, command] + rest

    def _parse(self, frames):
        if len(frames) < 2:
            raise mdp.ProtocolError("short message: %s" % mdp.dump(frames))
        if frames[0] != self.HEADER:
            raise mdp.ProtocolError("header %r, want %r" % (frames[0], self.HEADER))
        return frames[1], frames[2:]

    def partial(self, body):
        """Send one PARTIAL for the request in hand."""
        self._reply(self.PARTIAL, body)

    def final(self, body):
        """Send the FINAL for the request in hand; the worker is then idle."""
        self._reply(self.FINAL, body)
        self.reply_to = None
