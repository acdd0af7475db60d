/*
 * echo_server: a plain libzmq ROUTER echo, the transport's own limit with no
 * Go and no broker in the way. Build: gcc -O2 -o echo_server echo_server.c -lzmq
 *
 *   echo_server [ENDPOINT]        (default tcp://127.0.0.1:5560)
 *
 * Every message is sent back as received (frames moved, not copied), with one
 * exception so that Majordomo clients can use it as a "broker" that answers at
 * once: an 18/MDP client REQUEST (MDPC02, 0x01) goes back as a FINAL (0x03).
 * A 7/MDP client request already has the shape of its reply.
 *
 * Control messages (one body frame): "$CPU" is answered with this process's
 * CPU time so far, "USER_US SYS_US" (getrusage RUSAGE_SELF: the libzmq I/O
 * thread included); "$STOP" makes it exit. Prints "READY <endpoint>" on stdout
 * once bound.
 */
#include <zmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAXF 64

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static int is(zmq_msg_t *m, const char *s) {
	size_t n = strlen(s);
	return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

int main(int argc, char **argv) {
	const char *ep = argc > 1 ? argv[1] : "tcp://127.0.0.1:5560";
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	int hwm = 100000, zero = 0;
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	if (zmq_bind(s, ep) != 0) {
		fprintf(stderr, "echo_server: bind %s: %s\n", ep, zmq_strerror(errno));
		return 1;
	}
	char last[256];
	size_t len = sizeof last;
	zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &len);
	printf("READY %s\n", last);
	fflush(stdout);
	zmq_msg_t f[MAXF];
	while (!stop) {
		int n = 0, more = 1;
		while (more) {
			zmq_msg_t *m = &f[n < MAXF ? n : MAXF - 1];
			if (n >= MAXF) zmq_msg_close(m); /* Keep the last slot for overflow. */
			zmq_msg_init(m);
			if (zmq_msg_recv(m, s, 0) < 0) {
				if (errno == EINTR && n > 0) continue;
				zmq_msg_close(m);
				for (int i = 0; i < n && i < MAXF - 1; i++) zmq_msg_close(&f[i]);
				n = -1;
				break;
			}
			more = zmq_msg_more(m);
			if (n < MAXF) n++;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN) continue;
			break;
		}
		if (n == 2 && is(&f[1], "$CPU")) {
			struct rusage ru;
			getrusage(RUSAGE_SELF, &ru);
			char buf[64];
			int l = snprintf(buf, sizeof buf, "%ld %ld",
				(long)ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
				(long)ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec);
			zmq_msg_close(&f[1]);
			zmq_msg_init_size(&f[1], l);
			memcpy(zmq_msg_data(&f[1]), buf, l);
		} else if (n == 2 && is(&f[1], "$STOP")) {
			break;
		} else if (n >= 3 && is(&f[1], "MDPC02") && zmq_msg_size(&f[2]) == 1 &&
			   *(unsigned char *)zmq_msg_data(&f[2]) == 0x01) {
			*(unsigned char *)zmq_msg_data(&f[2]) = 0x03;
		}
		for (int i = 0; i < n; i++) {
			int rc;
			while ((rc = zmq_msg_send(&f[i], s, i < n - 1 ? ZMQ_SNDMORE : 0)) < 0 && errno == EINTR)
				;
			if (rc < 0) {
				for (int j = i; j < n; j++) zmq_msg_close(&f[j]);
				break;
			}
		}
	}
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}
