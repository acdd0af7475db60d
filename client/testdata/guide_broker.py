"""A plain 7/MDP broker written after the Guide's mdbroker.py (Chapter 4),
used to check that the Go client and worker libraries work with a broker
from another implementation.

Like the Guide's, it heartbeats and purges idle workers only, answers
mmi.service and replies "501" to any other mmi.* service.

Usage: guide_broker.py HEARTBEAT_SECONDS
It binds a random loopback port and prints it on the first line of stdout.
"""
import sys
import time

import zmq

C_CLIENT = b"MDPC01"
W_WORKER = b"MDPW01"
W_READY, W_REQUEST, W_REPLY, W_HEARTBEAT, W_DISCONNECT = (
    b"\x01", b"\x02", b"\x03", b"\x04", b"\x05")

HEARTBEAT = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
LIVENESS = 3


class Service:
    def __init__(self, name):
        self.name = name
        self.requests = []
        self.waiting = []


class Worker:
    def __init__(self, identity):
        self.identity = identity
        self.service = None
        self.expiry = time.time() + HEARTBEAT * LIVENESS


class Broker:
    def __init__(self):
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.services = {}
        self.workers = {}
        self.waiting = []
        self.heartbeat_at = time.time() + HEARTBEAT

    def service(self, name):
        if name not in self.services:
            self.services[name] = Service(name)
        return self.services[name]

    def send_to_worker(self, worker, command, msg=None):
        frames = [worker.identity, b"", W_WORKER, command] + (msg or [])
        self.socket.send_multipart(frames)

    def delete_worker(self, worker, disconnect):
        if disconnect:
            self.send_to_worker(worker, W_DISCONNECT)
        if worker.service is not None and worker in worker.service.waiting:
            worker.service.waiting.remove(worker)
        if worker in self.waiting:
            self.waiting.remove(worker)
        self.workers.pop(worker.identity, None)

    def worker_waiting(self, worker):
        self.waiting.append(worker)
        worker.service.waiting.append(worker)
        worker.expiry = time.time() + HEARTBEAT * LIVENESS
        self.dispatch(worker.service)

    def dispatch(self, service, msg=None):
        if msg is not None:
            service.requests.append(msg)
        self.purge()
        while service.waiting and service.requests:
            msg = service.requests.pop(0)
            worker = service.waiting.pop(0)
            self.waiting.remove(worker)
            self.send_to_worker(worker, W_REQUEST, msg)

    def purge(self):
        now = time.time()
        for w in list(self.waiting):
            if w.expiry < now:
                self.delete_worker(w, False)

    def client(self, sender, msg):
        service = msg.pop(0)
        if service.startswith(b"mmi."):
            if service == b"mmi.service":
                name = msg[-1]
                code = b"200" if name in self.services and self.services[name].waiting else b"404"
            else:
                code = b"501"
            self.socket.send_multipart([sender, b"", C_CLIENT, service, code])
            return
        self.dispatch(self.service(service), [sender, b""] + msg)

    def worker(self, sender, msg):
        command = msg.pop(0)
        worker = self.workers.get(sender)
        if command == W_READY:
            if worker is not None or msg[0].startswith(b"mmi."):
                self.delete_worker(worker or Worker(sender), True)
                return
            worker = self.workers[sender] = Worker(sender)
            worker.service = self.service(msg[0])
            self.worker_waiting(worker)
        elif command == W_REPLY:
            if worker is None:
                self.delete_worker(Worker(sender), True)
                return
            client = msg.pop(0)
            msg.pop(0)
            self.socket.send_multipart([client, b"", C_CLIENT, worker.service.name] + msg)
            self.worker_waiting(worker)
        elif command == W_HEARTBEAT:
            if worker is None:
                self.delete_worker(Worker(sender), True)
            else:
                worker.expiry = time.time() + HEARTBEAT * LIVENESS
        elif command == W_DISCONNECT:
            if worker is not None:
                self.delete_worker(worker, False)

    def run(self):
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while True:
            if poller.poll(HEARTBEAT * 1000):
                msg = self.socket.recv_multipart()
                sender = msg.pop(0)
                if len(msg) < 3 or msg[0] != b"":
                    continue
                header = msg[1]
                if header == C_CLIENT:
                    self.client(sender, msg[2:])
                elif header == W_WORKER:
                    self.worker(sender, msg[2:])
            if time.time() > self.heartbeat_at:
                self.purge()
                for w in self.waiting:
                    self.send_to_worker(w, W_HEARTBEAT)
                self.heartbeat_at = time.time() + HEARTBEAT


if __name__ == "__main__":
    b = Broker()
    print(b.port, flush=True)
    try:
        b.run()
    except KeyboardInterrupt:
        pass
