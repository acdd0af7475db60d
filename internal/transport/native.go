package transport

/*
#cgo pkg-config: libzmq
// These C functions neither keep the Go pointers they get nor call back
// into Go, so cgo may skip the escape of their arguments and the callback
// bookkeeping on every message.
#cgo noescape mdg_recv
#cgo nocallback mdg_recv
#cgo noescape mdg_copy
#cgo nocallback mdg_copy
#cgo noescape mdg_send
#cgo nocallback mdg_send
#cgo nocallback mdg_events
#include <zmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

// mdg_rx holds the frames of one received multipart message on the C side
// until Go has a buffer to copy them into: a whole message crosses the cgo
// boundary in two calls, whatever its frame count, instead of about six calls
// per frame through a general-purpose binding.
typedef struct {
	zmq_msg_t *msgs;
	size_t *sizes;
	int cap;
	int n;
	// With want_uid set, mdg_recv copies the message's ZAP User-Id here
	// (uidlen -1: none). 27/ZAP caps string fields at 255 characters.
	int want_uid;
	int uidlen;
	char uid[256];
} mdg_rx;

// mdg_uid records the User-Id property of m, if it has one. A ROUTER's
// routing-id frame lacks the connection's metadata when libzmq prefetched
// it to answer ZMQ_EVENTS; the frames after it always have it, so mdg_recv
// asks each frame until one answers.
static void mdg_uid(mdg_rx *rx, zmq_msg_t *m) {
	const char *u = zmq_msg_gets(m, "User-Id");
	if (!u) return;
	size_t l = strlen(u);
	if (l > sizeof(rx->uid)) l = sizeof(rx->uid);
	memcpy(rx->uid, u, l);
	rx->uidlen = (int)l;
}

static mdg_rx *mdg_rx_new(void) { return (mdg_rx *)calloc(1, sizeof(mdg_rx)); }

static void mdg_rx_reset(mdg_rx *rx) {
	for (int i = 0; i < rx->n; i++) zmq_msg_close(&rx->msgs[i]);
	rx->n = 0;
}

static void mdg_rx_free(mdg_rx *rx) {
	mdg_rx_reset(rx);
	free(rx->msgs);
	free(rx->sizes);
	free(rx);
}

static int mdg_rx_grow(mdg_rx *rx) {
	int cap = rx->cap ? rx->cap * 2 : 16;
	zmq_msg_t *m = (zmq_msg_t *)realloc(rx->msgs, cap * sizeof(zmq_msg_t));
	if (!m) return -1;
	rx->msgs = m;
	size_t *s = (size_t *)realloc(rx->sizes, cap * sizeof(size_t));
	if (!s) return -1;
	rx->sizes = s;
	rx->cap = cap;
	return 0;
}

// mdg_recv receives one whole multipart message, keeping at most maxf frames
// (0: all) and counting the discarded rest in *dropped. Only the first frame
// honours flags (ZMQ_DONTWAIT): the rest of a message is always already
// there, and an interrupted wait for it is retried, so that a message is never
// split. Returns the frames kept, or -1 with errno.
static int mdg_recv(void *sock, mdg_rx *rx, int maxf, int flags, int *dropped, size_t *total) {
	zmq_msg_t spare;
	mdg_rx_reset(rx);
	*dropped = 0;
	*total = 0;
	rx->uidlen = -1;
	for (;;) {
		int keep = maxf <= 0 || rx->n < maxf;
		if (keep && rx->n == rx->cap && mdg_rx_grow(rx) != 0) {
			keep = 0; // Out of memory: read on, count as dropped.
		}
		zmq_msg_t *m = keep ? &rx->msgs[rx->n] : &spare;
		zmq_msg_init(m);
		int first = rx->n == 0 && *dropped == 0;
		int rc;
		for (;;) {
			rc = zmq_msg_recv(m, sock, first ? flags : 0);
			if (rc >= 0 || errno != EINTR || first) break;
		}
		if (rc < 0) {
			int e = errno;
			zmq_msg_close(m);
			mdg_rx_reset(rx);
			errno = e;
			return -1;
		}
		int more = zmq_msg_more(m);
		if (rx->want_uid && rx->uidlen < 0) mdg_uid(rx, m);
		if (keep) {
			rx->sizes[rx->n] = zmq_msg_size(m);
			*total += rx->sizes[rx->n];
			rx->n++;
		} else {
			zmq_msg_close(m);
			(*dropped)++;
		}
		if (!more) return rx->n;
	}
}

// mdg_copy copies the held frames back to back into dst and releases them.
static void mdg_copy(mdg_rx *rx, char *dst) {
	for (int i = 0; i < rx->n; i++) {
		if (rx->sizes[i]) memcpy(dst, zmq_msg_data(&rx->msgs[i]), rx->sizes[i]);
		dst += rx->sizes[i];
		zmq_msg_close(&rx->msgs[i]);
	}
	rx->n = 0;
}

// mdg_send sends n frames stored back to back in buf. flags apply to the
// first frame; once it is accepted libzmq accepts the rest of the message.
// Returns 0, or -1 with errno if the first frame was refused, or -2 if a
// later one was (which libzmq's atomic multipart sends rule out).
static int mdg_send(void *sock, const char *buf, const size_t *sizes, int n, int flags) {
	for (int i = 0; i < n; i++) {
		int f = (i == 0 ? flags : 0) | (i < n - 1 ? ZMQ_SNDMORE : 0);
		int rc;
		for (;;) {
			rc = zmq_send(sock, buf, sizes[i], f);
			if (rc >= 0 || errno != EINTR) break;
		}
		if (rc < 0) return i == 0 ? -1 : -2;
		buf += sizes[i];
	}
	return 0;
}

static int mdg_events(void *sock) {
	int ev = 0;
	size_t len = sizeof(ev);
	for (;;) {
		if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0) return ev;
		if (errno != EINTR) return -1;
	}
}

static int mdg_fd(void *sock) {
	int fd = -1;
	size_t len = sizeof(fd);
	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0) return -1;
	return fd;
}

static int mdg_setint(void *sock, int opt, int v) { return zmq_setsockopt(sock, opt, &v, sizeof(v)); }
static int mdg_setbytes(void *sock, int opt, const void *v, size_t n) { return zmq_setsockopt(sock, opt, n ? v : NULL, n); }
static int mdg_setint64(void *sock, int opt, long long v) { int64_t x = v; return zmq_setsockopt(sock, opt, &x, sizeof(x)); }

static int mdg_term(void *ctx) {
	for (;;) {
		if (zmq_ctx_term(ctx) == 0) return 0;
		if (errno != EINTR) return -1;
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// NewContext returns a Context backed by a private libzmq context, using this
// package's own small cgo layer: a multipart message crosses the cgo boundary
// in one call to send and two to receive, whatever its frame count, and waits
// happen in Go's netpoller. NewZMQ4Context is the same over pebbe/zmq4.
func NewContext() (Context, error) {
	c, err := C.zmq_ctx_new()
	if c == nil {
		return nil, fmt.Errorf("transport: new context: %w", errnoErr(err))
	}
	return &nativeContext{ctx: c}, nil
}

type nativeContext struct {
	ctx    unsafe.Pointer
	closed atomic.Bool
}

func (c *nativeContext) Term() error {
	if c.closed.Swap(true) {
		return nil
	}
	if rc, err := C.mdg_term(c.ctx); rc != 0 {
		return errnoErr(err)
	}
	return nil
}

func (c *nativeContext) NewSocket(t Type, o Options) (Socket, error) {
	var zt C.int
	switch t {
	case Router:
		zt = C.ZMQ_ROUTER
	case Dealer:
		zt = C.ZMQ_DEALER
	case Req:
		zt = C.ZMQ_REQ
	case Rep:
		zt = C.ZMQ_REP
	case Pair:
		zt = C.ZMQ_PAIR
	default:
		return nil, fmt.Errorf("transport: unknown socket type %d", t)
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	s, err := C.zmq_socket(c.ctx, zt)
	if s == nil {
		return nil, fmt.Errorf("transport: new socket: %w", errnoErr(err))
	}
	n := &nativeSocket{s: s, rx: C.mdg_rx_new()}
	if err := n.apply(t, o); err != nil {
		n.abort()
		return nil, err
	}
	fd := int(C.mdg_fd(s))
	if fd < 0 {
		n.abort()
		return nil, errors.New("transport: no ZMQ_FD")
	}
	if err := n.poll.open(fd, n.events); err != nil {
		n.abort()
		return nil, err
	}
	return n, nil
}

type nativeSocket struct {
	s      unsafe.Pointer
	rx     *C.mdg_rx
	poll   fdWaiter
	sizes  []C.size_t // Scratch for Send.
	buf    []byte     // Scratch for Send.
	uid    string     // User-Id of the last message received (Options.UserID).
	closed bool
}

func (n *nativeSocket) abort() {
	C.mdg_setint(n.s, C.ZMQ_LINGER, 0)
	C.zmq_close(n.s)
	C.mdg_rx_free(n.rx)
}

func (n *nativeSocket) apply(t Type, o Options) error {
	set := func(name string, opt C.int, v int) error {
		if rc, err := C.mdg_setint(n.s, opt, C.int(v)); rc != 0 {
			return fmt.Errorf("transport: set %s: %w", name, errnoErr(err))
		}
		return nil
	}
	if err := set("linger", C.ZMQ_LINGER, int(o.Linger/time.Millisecond)); err != nil {
		return err
	}
	if len(o.Identity) > 0 {
		if rc, err := C.zmq_setsockopt(n.s, C.ZMQ_ROUTING_ID, unsafe.Pointer(&o.Identity[0]), C.size_t(len(o.Identity))); rc != 0 {
			return fmt.Errorf("transport: set identity: %w", errnoErr(err))
		}
	}
	type opt struct {
		name string
		on   bool
		id   C.int
		v    int
	}
	for _, p := range []opt{
		{"sndhwm", o.SendHWM > 0, C.ZMQ_SNDHWM, o.SendHWM},
		{"rcvhwm", o.RecvHWM > 0, C.ZMQ_RCVHWM, o.RecvHWM},
		{"immediate", o.Immediate, C.ZMQ_IMMEDIATE, 1},
		{"reconnect_ivl", o.ReconnectInterval > 0, C.ZMQ_RECONNECT_IVL, int(o.ReconnectInterval / time.Millisecond)},
		{"router_mandatory", t == Router && o.RouterMandatory, C.ZMQ_ROUTER_MANDATORY, 1},
		{"router_handover", t == Router && o.RouterHandover, C.ZMQ_ROUTER_HANDOVER, 1},
	} {
		if p.on {
			if err := set(p.name, p.id, p.v); err != nil {
				return err
			}
		}
	}
	if o.MaxMsgSize > 0 {
		if rc, err := C.mdg_setint64(n.s, C.ZMQ_MAXMSGSIZE, C.longlong(o.MaxMsgSize)); rc != 0 {
			return fmt.Errorf("transport: set maxmsgsize: %w", errnoErr(err))
		}
	}
	if o.UserID {
		n.rx.want_uid = 1
	}
	if o.Security != nil {
		return n.SetSecurity(o.Security)
	}
	return nil
}

func (n *nativeSocket) SetSecurity(sec *Security) error {
	if n.closed {
		return ErrClosed
	}
	if sec == nil {
		sec = &Security{}
	}
	if err := sec.validate(); err != nil {
		return err
	}
	setInt := func(name string, opt C.int, v int) error {
		if rc, err := C.mdg_setint(n.s, opt, C.int(v)); rc != 0 {
			return fmt.Errorf("transport: set %s: %w", name, errnoErr(err))
		}
		return nil
	}
	setBytes := func(name string, opt C.int, v []byte) error {
		// C memory, so that no Go pointer is handed to libzmq; secret
		// keys are wiped from it before it is freed.
		p := C.CBytes(v)
		defer func() {
			C.memset(p, 0, C.size_t(len(v)))
			C.free(p)
		}()
		if rc, err := C.mdg_setbytes(n.s, opt, p, C.size_t(len(v))); rc != 0 {
			return fmt.Errorf("transport: set %s: %w", name, errnoErr(err))
		}
		return nil
	}
	var steps []error
	switch sec.Mechanism {
	case Null:
		// Either server option set to 0 selects NULL (zmq_setsockopt).
		steps = append(steps, setInt("plain_server", C.ZMQ_PLAIN_SERVER, 0))
	case Plain:
		if sec.Server {
			steps = append(steps, setInt("plain_server", C.ZMQ_PLAIN_SERVER, 1))
		} else {
			steps = append(steps,
				setBytes("plain_username", C.ZMQ_PLAIN_USERNAME, []byte(sec.Username)),
				setBytes("plain_password", C.ZMQ_PLAIN_PASSWORD, []byte(sec.Password)))
		}
	case Curve:
		if sec.Server {
			steps = append(steps, setInt("curve_server", C.ZMQ_CURVE_SERVER, 1),
				setBytes("curve_secretkey", C.ZMQ_CURVE_SECRETKEY, sec.SecretKey))
			if len(sec.PublicKey) > 0 {
				steps = append(steps, setBytes("curve_publickey", C.ZMQ_CURVE_PUBLICKEY, sec.PublicKey))
			}
		} else {
			steps = append(steps,
				setBytes("curve_serverkey", C.ZMQ_CURVE_SERVERKEY, sec.ServerKey),
				setBytes("curve_publickey", C.ZMQ_CURVE_PUBLICKEY, sec.PublicKey),
				setBytes("curve_secretkey", C.ZMQ_CURVE_SECRETKEY, sec.SecretKey))
		}
	}
	if sec.ZAPDomain != "" {
		steps = append(steps, setBytes("zap_domain", C.ZMQ_ZAP_DOMAIN, []byte(sec.ZAPDomain)))
	}
	return errors.Join(steps...)
}

func (n *nativeSocket) UserID() string { return n.uid }

func (n *nativeSocket) Bind(endpoint string) (string, error) {
	if n.closed {
		return "", ErrClosed
	}
	cs := C.CString(endpoint)
	defer C.free(unsafe.Pointer(cs))
	if rc, err := C.zmq_bind(n.s, cs); rc != 0 {
		return "", fmt.Errorf("transport: bind %s: %w", endpoint, errnoErr(err))
	}
	var buf [1024]C.char
	size := C.size_t(len(buf))
	if rc, _ := C.zmq_getsockopt(n.s, C.ZMQ_LAST_ENDPOINT, unsafe.Pointer(&buf[0]), &size); rc != 0 {
		return endpoint, nil
	}
	return C.GoString(&buf[0]), nil
}

func (n *nativeSocket) Connect(endpoint string) error {
	if n.closed {
		return ErrClosed
	}
	cs := C.CString(endpoint)
	defer C.free(unsafe.Pointer(cs))
	if rc, err := C.zmq_connect(n.s, cs); rc != 0 {
		return fmt.Errorf("transport: connect %s: %w", endpoint, errnoErr(err))
	}
	return nil
}

func (n *nativeSocket) Send(frames [][]byte, dontwait bool) error {
	if n.closed {
		return ErrClosed
	}
	if len(frames) == 0 {
		return nil
	}
	// Frames go back to back into one Go buffer, because cgo forbids handing
	// C a Go array of Go pointers; libzmq copies them into its own messages
	// anyway, so this is one extra memcpy of bytes already in cache.
	n.sizes = n.sizes[:0]
	n.buf = n.buf[:0]
	for _, f := range frames {
		n.sizes = append(n.sizes, C.size_t(len(f)))
		n.buf = append(n.buf, f...)
	}
	if len(n.buf) == 0 {
		n.buf = append(n.buf, 0) // A valid pointer for C; sizes say 0.
		n.buf = n.buf[:0]
	}
	bufp := (*C.char)(unsafe.Pointer(unsafe.SliceData(n.buf[:1])))
	for {
		rc, err := C.mdg_send(n.s, bufp, &n.sizes[0], C.int(len(frames)), C.ZMQ_DONTWAIT)
		if rc == 0 {
			break
		}
		if rc == -2 {
			return fmt.Errorf("transport: multipart send cut short: %w", errnoErr(err))
		}
		e := errnoErr(err)
		if errors.Is(e, ErrAgain) && !dontwait {
			if _, err := n.poll.wait(C.ZMQ_POLLOUT, time.Time{}); err != nil {
				return err
			}
			continue
		}
		return e
	}
	if cap(n.buf) > 1<<20 {
		n.buf = nil // Do not pin a huge buffer after one large message.
	}
	return nil
}

func (n *nativeSocket) Recv(maxFrames int, dontwait bool) ([][]byte, int, error) {
	if n.closed {
		return nil, 0, ErrClosed
	}
	for {
		var dropped C.int
		var total C.size_t
		cnt, err := C.mdg_recv(n.s, n.rx, C.int(maxFrames), C.ZMQ_DONTWAIT, &dropped, &total)
		if cnt < 0 {
			e := errnoErr(err)
			if errors.Is(e, ErrInterrupted) {
				continue
			}
			if errors.Is(e, ErrAgain) && !dontwait {
				ok, err := n.poll.wait(C.ZMQ_POLLIN, time.Time{})
				if err != nil {
					return nil, 0, err
				}
				if !ok {
					return nil, 0, ErrInterrupted // Woken.
				}
				continue
			}
			return nil, 0, e
		}
		if n.rx.want_uid != 0 {
			n.recordUID()
		}
		// One allocation holds every frame of the message.
		data := make([]byte, int(total)+1)
		C.mdg_copy(n.rx, (*C.char)(unsafe.Pointer(&data[0])))
		sizes := unsafe.Slice(n.rx.sizes, int(cnt))
		frames := make([][]byte, int(cnt))
		off := 0
		for i, sz := range sizes {
			end := off + int(sz)
			frames[i] = data[off:end:end]
			off = end
		}
		return frames, int(dropped), nil
	}
}

// recordUID keeps the User-Id mdg_recv found. Consecutive messages nearly
// always come from the same few peers, so the string is only allocated when
// it changes.
func (n *nativeSocket) recordUID() {
	l := int(n.rx.uidlen)
	if l < 0 {
		n.uid = ""
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&n.rx.uid[0])), l)
	if string(b) != n.uid {
		n.uid = string(b)
	}
}

func (n *nativeSocket) WaitReadable(timeout time.Duration) (bool, error) {
	if n.closed {
		return false, ErrClosed
	}
	if timeout == 0 {
		ev, err := n.events()
		return ev&C.ZMQ_POLLIN != 0, err
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	return n.poll.wait(C.ZMQ_POLLIN, deadline)
}

func (n *nativeSocket) events() (int, error) {
	ev, err := C.mdg_events(n.s)
	if ev < 0 {
		return 0, errnoErr(err)
	}
	return int(ev), nil
}

func (n *nativeSocket) Wake() { n.poll.wake() }

func (n *nativeSocket) Monitor(endpoint string) error {
	if n.closed {
		return ErrClosed
	}
	cs := C.CString(endpoint)
	defer C.free(unsafe.Pointer(cs))
	if rc, err := C.zmq_socket_monitor(n.s, cs, C.ZMQ_EVENT_ACCEPTED|C.ZMQ_EVENT_DISCONNECTED); rc != 0 {
		return fmt.Errorf("transport: monitor %s: %w", endpoint, errnoErr(err))
	}
	return nil
}

func (n *nativeSocket) Close() error {
	if n.closed {
		return nil
	}
	n.closed = true
	n.poll.close()
	C.mdg_rx_free(n.rx)
	if rc, err := C.zmq_close(n.s); rc != 0 {
		return errnoErr(err)
	}
	return nil
}

// fdWaiter parks a goroutine in Go's netpoller until libzmq's ZMQ_FD
// signals, a deadline passes or Wake is called. See zmqSocket for why.
type fdWaiter struct {
	file   *os.File
	raw    syscall.RawConn
	woken  atomic.Bool
	events func() (int, error)
}

func (w *fdWaiter) open(fd int, events func() (int, error)) error {
	// A duplicate, so that closing the os.File never closes libzmq's
	// descriptor; both share one open file description and its readiness.
	dup, err := syscall.Dup(fd)
	if err != nil {
		return fmt.Errorf("transport: dup ZMQ_FD: %w", err)
	}
	syscall.CloseOnExec(dup)
	w.file = os.NewFile(uintptr(dup), "zmq-fd")
	if w.raw, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		return fmt.Errorf("transport: ZMQ_FD not pollable: %w", err)
	}
	w.events = events
	return nil
}

func (w *fdWaiter) wait(mask int, deadline time.Time) (bool, error) {
	// The deadline is set before the woken flag is checked, and wake sets
	// the flag before it moves the deadline, so a wake is never lost.
	if err := w.file.SetReadDeadline(deadline); err != nil {
		return false, fmt.Errorf("transport: set deadline: %w", err)
	}
	ready := false
	var evErr error
	err := w.raw.Read(func(uintptr) bool {
		if w.woken.Load() {
			return true
		}
		// Reading ZMQ_EVENTS makes libzmq process its command queue and
		// re-arm the descriptor, as the ZMQ_FD contract requires.
		ev, err := w.events()
		if err != nil {
			evErr = err
			return true
		}
		ready = ev&mask != 0
		return ready
	})
	if w.woken.Swap(false) {
		return ready, nil
	}
	switch {
	case evErr != nil:
		return false, evErr
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("transport: wait: %w", err)
	}
	return ready, nil
}

func (w *fdWaiter) wake() {
	w.woken.Store(true)
	w.file.SetReadDeadline(time.Unix(1, 0))
}

func (w *fdWaiter) close() { w.file.Close() }

// errnoErr maps an errno from libzmq to this package's errors.
func errnoErr(err error) error {
	var e syscall.Errno
	if !errors.As(err, &e) {
		if err == nil {
			return errors.New("transport: unknown libzmq error")
		}
		return err
	}
	switch e {
	case syscall.EAGAIN:
		return ErrAgain
	case syscall.EINTR:
		return ErrInterrupted
	case syscall.EHOSTUNREACH:
		return ErrUnroutable
	case syscall.ENOTSOCK:
		return ErrClosed
	}
	if e == syscall.Errno(C.ETERM) {
		return ErrClosed
	}
	if e >= C.ZMQ_HAUSNUMERO {
		// libzmq's own codes have no text in the C library's table.
		return fmt.Errorf("%s: %w", C.GoString(C.zmq_strerror(C.int(e))), e)
	}
	return e
}
