// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb on a
// temporary directory, pg_ctl start on a free local port with the unix
// socket in that directory, and removal when the test ends. Tests use a
// real server, never a mock; a machine without the server binaries fails
// the test (install Debian's postgresql package: scripts/deps.sh --test).
//
// initdb refuses to run as root, and tests run as root in CI, so when the
// test process is root every server command runs as the "postgres" OS user
// (created by Debian's package) through runuser.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDirEnv names a directory holding initdb and pg_ctl, overriding the
// search.
const BinDirEnv = "PGTEST_BINDIR"

// Server is a running throwaway cluster.
type Server struct {
	t       testing.TB
	bin     string // Directory of initdb, pg_ctl.
	base    string // Temporary directory: data/, the socket, the log.
	data    string
	port    int
	runAs   string // OS user the server runs as ("" = this process's).
	dbSeq   atomic.Int64
	running bool
}

// FindBin returns the directory holding initdb and pg_ctl: $PGTEST_BINDIR,
// else the newest /usr/lib/postgresql/N/bin (Debian's layout, not on PATH),
// else the directory of initdb on PATH.
func FindBin() (string, error) {
	ok := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(BinDirEnv); d != "" {
		if ok(d) {
			return d, nil
		}
		return "", fmt.Errorf("pgtest: %s=%s has no initdb, pg_ctl and postgres", BinDirEnv, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if ok(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(r)) {
			return filepath.Dir(r), nil
		}
		if ok(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package (scripts/deps.sh --test) or set " + BinDirEnv)
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates and starts a cluster that is stopped and removed when t
// ends. It fails t if the binaries are missing or the server cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := FindBin()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("pgtest: running as root and there is no postgres user to run the server as (install Debian's postgresql package): %v", err)
		}
		s.runAs = "postgres"
	}
	// Not t.TempDir: its parents are private to this user, and the server
	// may run as another. A short path also keeps the socket's path under
	// the 107-byte limit.
	s.base, err = os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.cleanup)
	if s.runAs != "" {
		out, err := exec.Command("chown", s.runAs+":", s.base).CombinedOutput()
		if err != nil {
			t.Fatalf("pgtest: chown %s: %v: %s", s.base, err, out)
		}
	}
	s.data = filepath.Join(s.base, "data")
	s.port, err = freePort()
	if err != nil {
		t.Fatal(err)
	}
	// Throwaway: skip initdb's own fsyncs (the server itself runs with
	// fsync on, as in production, so benchmarks measure durable commits).
	if out, err := s.cmd("initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.Restart()
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cmd runs a binary of the server's as the server's user.
func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	var c *exec.Cmd
	if s.runAs != "" {
		c = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		c = exec.Command(path, args...)
	}
	c.Dir = s.base
	// A test environment's PG* variables must not steer the tools.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			c.Env = append(c.Env, kv)
		}
	}
	return c
}

// Restart starts the server (again, after Stop or Kill) and waits until it
// accepts connections.
func (s *Server) Restart() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=on -c shared_buffers=16MB -c max_connections=60", s.port, s.base)
	out, err := s.cmd("pg_ctl", "start", "-w", "-t", "60", "-D", s.data, "-l", filepath.Join(s.base, "log"), "-o", opts).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.base, "log"))
		s.t.Fatalf("pgtest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	s.running = true
}

// Stop shuts the server down cleanly.
func (s *Server) Stop() {
	s.t.Helper()
	if !s.running {
		return
	}
	if out, err := s.cmd("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", s.data).CombinedOutput(); err != nil {
		s.t.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
	s.running = false
}

// Kill crashes the server: SIGKILL to the postmaster and every one of its
// processes, as a machine failure or the OOM killer would, then waits until
// they are gone. Restart then goes through crash recovery.
func (s *Server) Kill() {
	s.t.Helper()
	if !s.running {
		return
	}
	pid, err := s.postmasterPID()
	if err != nil {
		s.t.Fatalf("pgtest: %v", err)
	}
	// Freeze the postmaster so that it forks nothing while its children are
	// listed, then kill them all.
	syscall.Kill(pid, syscall.SIGSTOP)
	pids := append(children(pid), pid)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range pids {
		for alive(p) {
			if time.Now().After(deadline) {
				s.t.Fatalf("pgtest: process %d still alive after SIGKILL", p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The lock files name a dead process; if that process lingers as a zombie
	// (no init reaping in a container), the server would refuse to start.
	os.Remove(filepath.Join(s.data, "postmaster.pid"))
	os.Remove(filepath.Join(s.base, fmt.Sprintf(".s.PGSQL.%d.lock", s.port)))
	s.running = false
}

func (s *Server) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := stat(p); ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// stat returns the parent pid and state of process p.
func stat(p int) (ppid int, state byte) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return 0, 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0]
}

// alive: the process exists and is not a zombie.
func alive(p int) bool {
	_, st := stat(p)
	return st != 0 && st != 'Z' && st != 'X'
}

func (s *Server) cleanup() {
	if s.running {
		if out, err := s.cmd("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", s.data).CombinedOutput(); err != nil {
			s.t.Logf("pgtest: pg_ctl stop: %v\n%s", err, out)
			s.Kill()
		}
		s.running = false
	}
	os.RemoveAll(s.base)
}

// URL returns the connection URL of database db, through the unix socket.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.base}, "port": {strconv.Itoa(s.port)}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + url.PathEscape(db) + "?" + q.Encode()
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase() string {
	s.t.Helper()
	name := fmt.Sprintf("t%d", s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		s.t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		s.t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}
