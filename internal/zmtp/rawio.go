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

// read reads into p: at least one byte, or an error (io.EOF at the end).
// It waits in the netpoller, honouring read deadlines.
func (c *conn) read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.nc.Read(p)
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case 0:
				n = int(r)
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
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
