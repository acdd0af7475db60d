package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PeerCommand is the hidden subcommand under which mdbench runs its own
// child processes: "mdbench __peer ROLE CONFIG-JSON ENDPOINT".
const PeerCommand = "__peer"

// Child roles.
const (
	roleWorkers = "workers"
	roleClients = "clients"
	roleRawEcho = "rawecho"
)

// child is a child process driven over its stdin and stdout, one line per
// message: it prints "ready ..." once serving; clients print "n COUNT"
// while measuring and "result JSON" at the end. "start" and "stop" on its
// stdin drive the measurement; closing stdin stops any child.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	n     atomicU64
	res   chan string
	// done is closed when the child has exited, with its status in
	// exitErr: stop may be called more than once (the clients' child is
	// stopped by finish and again by a deferred stop), and each call must
	// see the exit rather than wait out its timeout.
	done    chan struct{}
	exitErr error
}

type atomicU64 struct {
	mu sync.Mutex
	v  uint64
}

func (a *atomicU64) set(v uint64) { a.mu.Lock(); a.v = v; a.mu.Unlock() }
func (a *atomicU64) get() uint64  { a.mu.Lock(); defer a.mu.Unlock(); return a.v }

// spawn starts bin with args, under "taskset -c cpus" if cpus is set, so
// that the affinity holds from the first instruction for every thread.
func spawn(name, cpus, bin string, args ...string) (*child, error) {
	argv := append([]string{bin}, args...)
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The child dies with us if we are killed (mdbench owns its children).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stdin: in, lines: make(chan string, 16),
		res: make(chan string, 1), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "n "):
				if v, err := strconv.ParseUint(line[2:], 10, 64); err == nil {
					c.n.set(v)
				}
			case strings.HasPrefix(line, "result "):
				c.res <- line[len("result "):]
			default:
				select {
				case c.lines <- line:
				default:
				}
			}
		}
		c.exitErr = cmd.Wait()
		close(c.done)
		close(c.lines)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitLine waits for a line starting with prefix and returns the rest.
func (c *child) waitLine(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("%s exited before saying %q", c.name, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l[len(prefix):]), nil
			}
		case <-t.C:
			return "", fmt.Errorf("%s: no %q after %v", c.name, prefix, timeout)
		}
	}
}

func (c *child) say(cmd string) { fmt.Fprintln(c.stdin, cmd) }

// stop closes the child's stdin, waits for it to exit, and kills it if it
// has not after timeout.
func (c *child) stop(timeout time.Duration) error {
	c.stdin.Close()
	select {
	case <-c.done:
		return c.exitErr
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		return fmt.Errorf("%s did not exit in %v; killed", c.name, timeout)
	}
}

// signal sends sig and waits for the child to exit.
func (c *child) signal(sig os.Signal, timeout time.Duration) error {
	c.cmd.Process.Signal(sig)
	return c.stop(timeout)
}

// childLoad is a client load in a child process.
type childLoad struct{ c *child }

func (l childLoad) measure()      { l.c.say("start") }
func (l childLoad) count() uint64 { return l.c.n.get() }
func (l childLoad) endMeasure()   { l.c.say("stop") }
func (l childLoad) finish() (clientResult, error) {
	var r clientResult
	select {
	case s := <-l.c.res:
		if err := json.Unmarshal([]byte(s), &r); err != nil {
			return r, fmt.Errorf("clients: bad result: %w", err)
		}
	case <-time.After(30 * time.Second):
		l.c.stop(time.Second)
		return r, errors.New("clients: no result within 30s")
	}
	return r, l.c.stop(10 * time.Second)
}

// spawnPeer starts this executable as a child with the given role.
func spawnPeer(role, cpus string, cfg Config, endpoint string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(cfg)
	return spawn(role, cpus, self, PeerCommand, role, string(js), endpoint)
}

// PeerMain runs a child process of mdbench (the hidden subcommand
// PeerCommand); args are what follows it. It returns the exit status.
func PeerMain(args []string, stdin io.Reader, stdout io.Writer) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "mdbench: internal subcommand; usage: mdbench __peer ROLE CONFIG-JSON ENDPOINT")
		return 2
	}
	role, endpoint := args[0], args[2]
	var cfg Config
	if err := json.Unmarshal([]byte(args[1]), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "mdbench %s: %v\n", role, err)
		return 2
	}
	out := &lockedWriter{w: stdout}
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
		close(cmds)
	}()
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "mdbench %s: %v\n", role, err)
		return 1
	}
	switch role {
	case roleWorkers:
		ws, err := startWorkers(cfg, endpoint)
		if err != nil {
			return fail(err)
		}
		out.println("ready")
		for range cmds { // Until stdin closes.
		}
		ws.stop()
	case roleRawEcho:
		r, err := startRawEcho(endpoint, false)
		if err != nil {
			return fail(err)
		}
		out.println("ready " + r.endpoint)
		for range cmds {
		}
		if err := r.stop(); err != nil {
			return fail(err)
		}
	case roleClients:
		l, err := startClients(cfg, endpoint)
		if err != nil {
			return fail(err)
		}
		out.println("ready")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for cmd := range cmds {
			switch cmd {
			case "start":
				l.measure()
				go func() {
					t := time.NewTicker(50 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-t.C:
							out.println("n " + strconv.FormatUint(l.count(), 10))
						case <-ctx.Done():
							return
						}
					}
				}()
			case "stop":
				l.endMeasure()
				cancel()
				r, err := l.finish()
				if err != nil {
					return fail(err)
				}
				js, _ := json.Marshal(r)
				out.println("result " + string(js))
			}
		}
	default:
		return fail(fmt.Errorf("unknown role %q", role))
	}
	return 0
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, s)
}
