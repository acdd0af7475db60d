"""The job the real EventMQ job manager runs in TestRealEventMQ."""


def add(a, b):
    return a + b
