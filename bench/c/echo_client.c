/*
 * echo_client: a plain libzmq DEALER client for echo_server, the transport's
 * own limit with no Go in the way. Build: gcc -O2 -o echo_client echo_client.c -lzmq
 *
 *   echo_client [-e ENDPOINT] [-w WINDOW] [-s SIZE] [-d SECONDS] [-W WARMUP_SECONDS] [-j] [-S]
 *
 * Keeps WINDOW requests of SIZE bytes (one frame) in flight (1: synchronous,
 * a blocking send then a blocking receive), for WARMUP then SECONDS. Each
 * request carries its send time (CLOCK_MONOTONIC) in its first 8 bytes, so
 * the latency of every reply is exact; every sample is kept and sorted for
 * the percentiles. Asks the server for its CPU time ("$CPU") at the start and
 * end of the measured interval, so both processes' CPU per round trip are
 * reported. -j prints one JSON object instead of text; -S stops the server
 * at the end ("$STOP").
 */
#define _GNU_SOURCE
#include <zmq.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static long self_cpu_us(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (long)ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec +
	       (long)ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec;
}

static int cmp_u64(const void *a, const void *b) {
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int recv_body(void *s, zmq_msg_t *m) {
	for (;;) {
		int rc = zmq_msg_recv(m, s, 0);
		if (rc >= 0 || errno != EINTR) return rc;
	}
}

/* server_cpu drains the replies still in flight, then asks the server for
 * its CPU time ("$CPU") and returns it in microseconds, or -1. */
static long server_cpu(void *s, int *outstanding) {
	for (; *outstanding > 0; (*outstanding)--) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (recv_body(s, &m) < 0) { zmq_msg_close(&m); return -1; }
		zmq_msg_close(&m);
	}
	zmq_send(s, "$CPU", 4, 0);
	zmq_msg_t m;
	zmq_msg_init(&m);
	if (recv_body(s, &m) < 0) { zmq_msg_close(&m); return -1; }
	char buf[64];
	size_t n = zmq_msg_size(&m);
	if (n >= sizeof buf) n = sizeof buf - 1;
	memcpy(buf, zmq_msg_data(&m), n);
	buf[n] = 0;
	zmq_msg_close(&m);
	long u = 0, k = 0;
	if (sscanf(buf, "%ld %ld", &u, &k) == 2) return u + k;
	return -1;
}

int main(int argc, char **argv) {
	const char *ep = "tcp://127.0.0.1:5560";
	int window = 100, json = 0, stop_server = 0;
	size_t size = 100;
	double secs = 5, warm = 1;
	int o;
	while ((o = getopt(argc, argv, "e:w:s:d:W:jS")) != -1) {
		switch (o) {
		case 'e': ep = optarg; break;
		case 'w': window = atoi(optarg); break;
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'd': secs = atof(optarg); break;
		case 'W': warm = atof(optarg); break;
		case 'j': json = 1; break;
		case 'S': stop_server = 1; break;
		default:
			fprintf(stderr, "usage: echo_client [-e ENDPOINT] [-w WINDOW] [-s SIZE] [-d SECONDS] [-W WARMUP] [-j] [-S]\n");
			return 2;
		}
	}
	if (size < 8) size = 8; /* Room for the timestamp. */
	if (window < 1) window = 1;
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int hwm = 100000, zero = 0;
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	if (zmq_connect(s, ep) != 0) {
		fprintf(stderr, "echo_client: connect %s: %s\n", ep, zmq_strerror(errno));
		return 1;
	}
	char *body = calloc(1, size);
	size_t cap = 1 << 20, nsamp = 0;
	uint64_t *samp = malloc(cap * sizeof *samp);
	int outstanding = 0, measuring = 0;
	uint64_t t0 = now_ns(), tstart = 0, tend = 0;
	uint64_t warm_end = t0 + (uint64_t)(warm * 1e9), end = warm_end + (uint64_t)(secs * 1e9);
	long cpu0 = 0, srv0 = 0, cpu1 = 0, srv1 = 0;
	for (;;) {
		uint64_t t = now_ns();
		if (!measuring && t >= warm_end) {
			srv0 = server_cpu(s, &outstanding);
			if (srv0 < 0) { fprintf(stderr, "echo_client: no $CPU answer\n"); return 1; }
			cpu0 = self_cpu_us();
			measuring = 1;
			tstart = now_ns();
			t = tstart;
		}
		if (measuring && t >= end) break;
		while (outstanding < window) {
			uint64_t ts = now_ns();
			memcpy(body, &ts, 8);
			while (zmq_send(s, body, size, 0) < 0) {
				if (errno != EINTR) { perror("send"); return 1; }
			}
			outstanding++;
		}
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (recv_body(s, &m) < 0) { perror("recv"); return 1; }
		uint64_t now = now_ns();
		if (zmq_msg_size(&m) == size) {
			uint64_t ts;
			memcpy(&ts, zmq_msg_data(&m), 8);
			if (measuring) {
				if (nsamp == cap) {
					cap *= 2;
					samp = realloc(samp, cap * sizeof *samp);
				}
				samp[nsamp++] = now - ts;
			}
		}
		zmq_msg_close(&m);
		outstanding--;
	}
	tend = now_ns();
	cpu1 = self_cpu_us();
	srv1 = server_cpu(s, &outstanding);
	double el = (tend - tstart) / 1e9;
	qsort(samp, nsamp, sizeof *samp, cmp_u64);
#define PCT(p) (nsamp ? samp[(size_t)((p) / 100.0 * (nsamp - 1) + 0.5)] / 1000.0 : 0)
	double rps = nsamp / el;
	double ccpu = nsamp ? (double)(cpu1 - cpu0) / nsamp : 0;
	double scpu = nsamp && srv1 >= 0 ? (double)(srv1 - srv0) / nsamp : 0;
	double mx = nsamp ? samp[nsamp - 1] / 1000.0 : 0;
	if (json) {
		printf("{\"tool\":\"echo_client.c\",\"endpoint\":\"%s\",\"window\":%d,\"size\":%zu,\"seconds\":%.3f,"
		       "\"requests\":%zu,\"rps\":%.0f,\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},"
		       "\"cpu_us_per_req\":{\"client\":%.3f,\"server\":%.3f}}\n",
		       ep, window, size, el, nsamp, rps, PCT(50), PCT(90), PCT(99), PCT(99.9), mx, ccpu, scpu);
	} else {
		printf("echo_client.c %s window=%d size=%zu: %zu round trips in %.2fs = %.0f/s\n", ep, window, size, nsamp, el, rps);
		printf("latency us: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f\n", PCT(50), PCT(90), PCT(99), PCT(99.9), mx);
		printf("cpu us per round trip: client %.3f server %.3f\n", ccpu, scpu);
	}
	if (stop_server) zmq_send(s, "$STOP", 5, 0);
	zmq_close(s);
	zmq_ctx_term(ctx);
	return 0;
}
