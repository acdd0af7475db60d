package zmtp

import (
	"io"
	"syscall"
	"unsafe"
)

// Reads and writes on a connection's socket are non-blocking system calls
// made with syscall.RawSyscall, not through net.Conn.
//
// Why: net.Conn's Read and Write enter the Go scheduler's syscall state
// (entersyscall/exitsyscall). When the process has been idle, its sysmon
// thread sleeps, and entering a syscall wakes it (a futex wake and a thread
// switch); a syscall that runs longer than 20 µs, which a loopback write
// that wakes the receiver often does on these VMs, lets sysmon take the P
// away and hand it to another thread. Profiles of the broker under load
// showed sysmon at 17% of its CPU. A read or write on a non-blocking socket
// never sleeps in the kernel, so holding the P through it is safe, and the
// wait for readiness still goes through Go's netpoller (RawConn.Read's
// callback returns false on EAGAIN).
//
// The reader also saves the read that would return EAGAIN. RawConn.Read
// clears the descriptor's readiness once, then calls its callback until
// the callback returns true, waiting for readiness between calls. A read
// that returns less than there was room for has emptied the socket's
// receive queue, and the netpoller's edge-triggered events fire for
// whatever arrives after it; so after handling such a read the callback
// returns false and waits, instead of reading again to be told EAGAIN.
// Readiness cleared between two calls of RawConn.Read could lose an
// event, hence the whole read-handle-wait cycle stays inside one call
// (conn.readMore). What a short read does not show is an end of stream
// (FIN or RST) that arrived together with the data: it needs a read of its
// own and raises no further event. A read deadline about 50 ms after the
// last short read (conn.armEOFCheck) makes an idle reader read once more.

// read reads into p: at least one byte, or an error (io.EOF at the end).
// It waits in the netpoller for as long as it takes (or the handshake's
// deadline), so it first removes readMore's end-of-stream check.
func (c *conn) read(p []byte) (int, error) {
	c.clearEOFCheck()
	if c.rc == nil || len(p) == 0 {
		return c.nc.Read(p)
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		n, errno = rawRead(fd, p)
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawRead makes one read(2), retrying on EINTR: the count or the errno.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
}

// rawWrite writes as much of buf as the kernel takes now, without waiting.
func rawWrite(fd uintptr, buf []byte) int {
	n := 0
	for n < len(buf) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&buf[n])), uintptr(len(buf)-n))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 || int(r) <= 0 {
			break
		}
		n += int(r)
	}
	return n
}
