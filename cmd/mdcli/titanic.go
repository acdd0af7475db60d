package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/majordomo-go/majordomo/client"
)

// Exit statuses of "mdcli titanic reply" besides exitOK, exitFail and
// exitUsage.
const (
	exitPending = 3 // 300: the reply is not there yet.
	exitUnknown = 4 // 400: no such request (never submitted, closed or expired).
	// exitTitanicNoWorkers is exitNoWorkers for "titanic reply", where 3
	// already means pending.
	exitTitanicNoWorkers = 5
)

const titanicUsage = `Usage: mdcli titanic [GLOBAL FLAGS] COMMAND [flags] ARGS

Durable, disconnected request-reply through a Titanic server (9/TSP),
such as mdtitanic or mdbroker --titanic-dir.

Commands:
  submit SERVICE [FRAME ...]   store a request for SERVICE; print its UUID
  reply UUID                   print the reply frames, one per line
  close UUID                   delete the request and its reply

Exit status:
  submit  0 stored (UUID on standard output), 3 no Titanic server (no workers
          for titanic.request), 1 error, 2 usage
  reply   0 reply printed, 3 pending (not yet; try again later),
          4 unknown UUID (never submitted, closed or expired), 5 no Titanic
          server (no workers for titanic.reply), 1 error, 2 usage
  close   0 closed (also for an unknown UUID), 3 no Titanic server (no workers
          for titanic.close), 1 error, 2 usage
"1 error" includes a broker that does not answer.

Global flags (before "titanic", after it, or after the command name; see
mdcli --help):
` + globalFlagsUsage + `
Run "mdcli titanic COMMAND --help" for a command's flags.
`

const titanicSubmitUsage = `Usage: mdcli titanic submit [flags] SERVICE [FRAME ...]

Ask Titanic to store a request for SERVICE, with each FRAME argument as one
body frame, and print its UUID. Titanic answers once the request is stored
durably and sends it to SERVICE whenever SERVICE has workers; fetch the
reply with "mdcli titanic reply UUID".

Exit status: 0 stored, 3 no Titanic server ("no workers for service
titanic.request"), 1 error (one line on standard error), 2 usage.

Flags:
  --stdin          read one more body frame from standard input
` + clientFlagsUsage

const titanicReplyUsage = `Usage: mdcli titanic reply [flags] UUID

Print the reply to request UUID, each frame on its own line (a newline is
added unless the frame ends with one). Asking again prints it again: the
reply stays until "mdcli titanic close UUID".

Exit status: 0 reply printed; 3 pending: the request has no reply yet
("pending" on standard error; try again later); 4 unknown UUID (never
submitted, closed, or expired); 5 no Titanic server ("no workers for
service titanic.reply"); 1 error; 2 usage.

Flags:
  --raw            write reply frames as raw bytes, with nothing added
` + clientFlagsUsage

const titanicCloseUsage = `Usage: mdcli titanic close [flags] UUID

Tell Titanic the reply to UUID is no longer needed: it deletes the request
and its reply. Closing an unknown UUID succeeds too (9/TSP).

Exit status: 0 closed, 3 no Titanic server ("no workers for service
titanic.close"), 1 error, 2 usage.

Flags:
` + clientFlagsUsage

func (c *cli) titanic(ctx context.Context, args []string) int {
	// The global flags may come between "titanic" and its command.
	fs := c.flags("mdcli titanic", titanicUsage)
	if code, ok := c.parse(fs, "mdcli titanic", args); !ok {
		return code
	}
	args = fs.Args()
	if len(args) == 0 {
		return c.usageError("mdcli titanic", "missing command: submit, reply or close")
	}
	switch args[0] {
	case "submit":
		return c.titanicSubmit(ctx, args[1:])
	case "reply":
		return c.titanicReply(ctx, args[1:])
	case "close":
		return c.titanicClose(ctx, args[1:])
	case "-h", "--help", "-help", "help":
		fmt.Fprint(c.stdout, titanicUsage)
		return exitOK
	}
	return c.usageError("mdcli titanic", fmt.Sprintf("unknown command %q", args[0]))
}

func (c *cli) titanicSubmit(ctx context.Context, args []string) int {
	const cmd = "mdcli titanic submit"
	fs := c.flags(cmd, titanicSubmitUsage)
	cf := c.addClientFlags(fs)
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
	id, err := (&client.Titanic{Client: cl}).Submit(ctx, service, body...)
	if err != nil {
		return c.failRequest(cmd, client.TitanicRequest, err, 0)
	}
	fmt.Fprintln(c.stdout, id)
	return exitOK
}

// uuidCommand parses the flags and the single UUID argument of reply and
// close.
func (c *cli) uuidCommand(cmd, usage string, args []string, extra func(*flag.FlagSet)) (*client.Client, string, int, bool) {
	fs := c.flags(cmd, usage)
	cf := c.addClientFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if code, ok := c.parse(fs, cmd, args); !ok {
		return nil, "", code, false
	}
	if fs.NArg() != 1 {
		return nil, "", c.usageError(cmd, "want exactly one UUID"), false
	}
	cl, err := c.connect(cf)
	if err != nil {
		return nil, "", c.fail(cmd, err), false
	}
	return cl, fs.Arg(0), 0, true
}

func (c *cli) titanicReply(ctx context.Context, args []string) int {
	const cmd = "mdcli titanic reply"
	var raw *bool
	cl, id, code, ok := c.uuidCommand(cmd, titanicReplyUsage, args, func(fs *flag.FlagSet) {
		raw = fs.Bool("raw", false, "raw output")
	})
	if !ok {
		return code
	}
	defer cl.Close()
	reply, err := (&client.Titanic{Client: cl}).Reply(ctx, id)
	switch {
	case errors.Is(err, client.ErrTitanicPending):
		fmt.Fprintf(c.stderr, "%s: %s: pending: no reply yet, try again later\n", cmd, id)
		return exitPending
	case errors.Is(err, client.ErrTitanicUnknown):
		fmt.Fprintf(c.stderr, "%s: %s: unknown request (never submitted, closed, or expired)\n", cmd, id)
		return exitUnknown
	case err != nil:
		return c.failRequest(cmd, client.TitanicReply, err, exitTitanicNoWorkers)
	}
	if err := c.printFrames(reply, *raw); err != nil {
		return c.fail(cmd, err)
	}
	return exitOK
}

func (c *cli) titanicClose(ctx context.Context, args []string) int {
	const cmd = "mdcli titanic close"
	cl, id, code, ok := c.uuidCommand(cmd, titanicCloseUsage, args, nil)
	if !ok {
		return code
	}
	defer cl.Close()
	if err := (&client.Titanic{Client: cl}).Close(ctx, id); err != nil {
		return c.failRequest(cmd, client.TitanicClose, err, 0)
	}
	return exitOK
}
