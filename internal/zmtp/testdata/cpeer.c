/* A libzmq peer in C for the engine's interop tests (tests only: the
 * product has no cgo). Built by interop_test.go with gcc -lzmq.
 *
 *   cpeer req EP                 REQ: messages of 0, 255, 256, 64 KiB and
 *                                8 MiB, then one of 1,000 frames; each reply
 *                                must be the request.
 *   cpeer hb EP IVL TIMEOUT MS   DEALER with ZMQ_HEARTBEAT_IVL/TIMEOUT (ms):
 *                                idle MS, print DISCONNECTS n, then one
 *                                round trip.
 * Prints OK on success, ERR text on failure; exits within 25 s regardless.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static void fail(const char *what) {
	printf("ERR %s: %s\n", what, zmq_strerror(zmq_errno()));
	fflush(stdout);
	exit(1);
}

/* sendv sends n frames. */
static void sendv(void *s, int n, char **data, size_t *len) {
	for (int i = 0; i < n; i++)
		if (zmq_send(s, data[i], len[i], i < n - 1 ? ZMQ_SNDMORE : 0) < 0)
			fail("send");
}

/* expect receives one message and checks it is the n frames given. */
static void expect(void *s, int n, char **data, size_t *len) {
	for (int i = 0;; i++) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s, 0) < 0)
			fail("recv");
		if (i >= n || zmq_msg_size(&m) != len[i] || memcmp(zmq_msg_data(&m), data[i], len[i]) != 0) {
			printf("ERR frame %d differs (%zu bytes)\n", i, zmq_msg_size(&m));
			exit(1);
		}
		int more = zmq_msg_more(&m);
		zmq_msg_close(&m);
		if (!more) {
			if (i != n - 1) {
				printf("ERR %d frames, want %d\n", i + 1, n);
				exit(1);
			}
			return;
		}
	}
}

static void req(void *ctx, const char *ep) {
	void *s = zmq_socket(ctx, ZMQ_REQ);
	int timeout = 15000, linger = 1000;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	if (zmq_connect(s, ep) != 0)
		fail("connect");
	size_t sizes[] = {0, 255, 256, 64 << 10, 8 << 20};
	char *big = malloc(8 << 20);
	memset(big, 'x', 8 << 20);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *data[] = {"size", big};
		size_t len[] = {4, sizes[i]};
		sendv(s, 2, data, len);
		expect(s, 2, data, len);
	}
	enum { N = 1000 };
	static char bufs[N][8];
	char *data[N];
	size_t len[N];
	for (int i = 0; i < N; i++) {
		len[i] = (size_t)snprintf(bufs[i], sizeof bufs[i], "%d", i);
		data[i] = bufs[i];
	}
	sendv(s, N, data, len);
	expect(s, N, data, len);
	free(big);
	zmq_close(s);
}

static void hb(void *ctx, const char *ep, int ivl, int timeout, int idle) {
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int rcv = 15000, linger = 1000;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &rcv, sizeof rcv);
	zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
	zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
	zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &timeout, sizeof timeout);
	if (zmq_socket_monitor(s, "inproc://mon", ZMQ_EVENT_DISCONNECTED) != 0)
		fail("monitor");
	void *mon = zmq_socket(ctx, ZMQ_PAIR);
	if (zmq_connect(mon, "inproc://mon") != 0)
		fail("monitor connect");
	if (zmq_connect(s, ep) != 0)
		fail("connect");
	int disconnects = 0;
	for (int waited = 0; waited < idle; waited += 50) {
		zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 50) > 0) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			zmq_msg_recv(&m, mon, 0); /* event and value */
			uint16_t ev;
			memcpy(&ev, zmq_msg_data(&m), 2);
			if (ev == ZMQ_EVENT_DISCONNECTED)
				disconnects++;
			zmq_msg_close(&m);
			zmq_msg_init(&m);
			zmq_msg_recv(&m, mon, 0); /* endpoint */
			zmq_msg_close(&m);
		}
	}
	printf("DISCONNECTS %d\n", disconnects);
	fflush(stdout);
	char *data[] = {"alive"};
	size_t len[] = {5};
	sendv(s, 1, data, len);
	expect(s, 1, data, len);
	zmq_close(mon);
	zmq_close(s);
}

int main(int argc, char **argv) {
	alarm(25); /* never outlive a test run */
	void *ctx = zmq_ctx_new();
	if (argc == 3 && strcmp(argv[1], "req") == 0)
		req(ctx, argv[2]);
	else if (argc == 6 && strcmp(argv[1], "hb") == 0)
		hb(ctx, argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	else {
		printf("ERR usage\n");
		return 2;
	}
	printf("OK\n");
	fflush(stdout);
	zmq_ctx_term(ctx);
	return 0;
}
