package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/majordomo-go/majordomo/client"
)

const callUsage = `Usage: mdcli call [flags] SERVICE [FRAME ...]

Send one request to SERVICE, with each FRAME argument as one body frame (one
empty frame if there are none), and print the reply: each frame on its own
line (a newline is added unless the frame ends with one). With --v2 the
PARTIAL replies are printed as they arrive, then the FINAL.

When no reply comes within --timeout, mdcli asks the broker about SERVICE
(8/MMI) instead of resending: with no worker it stops at once (exit 3); with
a worker it keeps waiting, however long the worker takes, without queueing
the request twice (interrupt to stop); only when the broker does not answer
does it resend on a new connection, up to --retries times (then exit 1).

Exit status: 0 when a reply came, 3 when the broker has no worker for
SERVICE ("no workers for service SERVICE" on standard error), 1 when the
broker is unreachable or on another error (one line on standard error),
2 on bad usage.

Flags:
  --raw            write reply frames as raw bytes, with nothing added
  --stdin          read one more body frame from standard input
  --check          ask the broker first and send nothing if SERVICE has no
                   worker (one more round trip; nothing is left queued)
` + clientFlagsUsage

func (c *cli) call(ctx context.Context, args []string) int {
	const cmd = "mdcli call"
	fs := c.flags(cmd, callUsage)
	cf := c.addClientFlags(fs)
	raw := fs.Bool("raw", false, "raw output")
	stdin := fs.Bool("stdin", false, "read a frame from stdin")
	check := fs.Bool("check", false, "ask about the service before sending")
	if code, ok := c.parse(fs, cmd, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return c.usageError(cmd, "missing SERVICE")
	}
	service := fs.Arg(0)
	var body [][]byte
	for _, a := range fs.Args()[1:] {
		body = append(body, []byte(a))
	}
	if *stdin {
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return c.fail(cmd, fmt.Errorf("reading standard input: %w", err))
		}
		body = append(body, b)
	}
	var opts []client.Option
	if *check {
		opts = append(opts, client.WithServiceCheck())
	}
	cl, err := c.connect(cf, opts...)
	if err != nil {
		return c.fail(cmd, err)
	}
	defer cl.Close()
	for reply, err := range cl.Stream(ctx, service, body...) {
		if err != nil {
			return c.failRequest(cmd, service, err, 0)
		}
		if err := c.printFrames(reply, *raw); err != nil {
			return c.fail(cmd, err)
		}
	}
	return exitOK
}

func (c *cli) printFrames(frames [][]byte, raw bool) error {
	var buf bytes.Buffer
	for _, f := range frames {
		buf.Write(f)
		if !raw && !bytes.HasSuffix(f, []byte("\n")) {
			buf.WriteByte('\n')
		}
	}
	_, err := c.stdout.Write(buf.Bytes())
	return err
}
