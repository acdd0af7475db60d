package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

const callUsage = `Usage: mdcli call [flags] SERVICE [FRAME ...]

Send one request to SERVICE, with each FRAME argument as one body frame (one
empty frame if there are none), and print the reply: each frame on its own
line (a newline is added unless the frame ends with one). With --v2 the
PARTIAL replies are printed as they arrive, then the FINAL.

Exit status: 0 when a reply came, 1 on timeout or error (one line on
standard error), 2 on bad usage.

Flags:
  --raw            write reply frames as raw bytes, with nothing added
  --stdin          read one more body frame from standard input
` + clientFlagsUsage

func (c *cli) call(ctx context.Context, args []string) int {
	const cmd = "mdcli call"
	fs := c.flags(cmd, callUsage)
	cf := c.addClientFlags(fs)
	raw := fs.Bool("raw", false, "raw output")
	stdin := fs.Bool("stdin", false, "read a frame from stdin")
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
	cl, err := c.connect(cf)
	if err != nil {
		return c.fail(cmd, err)
	}
	defer cl.Close()
	for reply, err := range cl.Stream(ctx, service, body...) {
		if err != nil {
			return c.fail(cmd, err)
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
