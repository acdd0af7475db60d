package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/majordomo-go/majordomo/client"
)

const serviceUsage = `Usage: mdcli service [flags] NAME

Ask the broker whether NAME has at least one worker (8/MMI mmi.service) and
print its answer code: 200 (yes), 404 (no), or 501 (the broker does not
implement MMI).

Exit status: 0 for 200, 3 for 404 (no workers), 1 otherwise (501, broker
unreachable, error).

Flags:
` + clientFlagsUsage

const servicesUsage = `Usage: mdcli services [flags]

List the services that have at least one worker, one per line
(mmi.services, an extension of this project's broker).

Flags:
` + clientFlagsUsage

const workersUsage = `Usage: mdcli workers [flags] NAME

Print the idle worker, busy worker and queued request counts of NAME as
"idle=N busy=N queued=N" (mmi.workers, an extension of this project's
broker). Exit status 3 if the broker does not know NAME (no workers and
nothing queued), 1 if it is unreachable or on another error.

Flags:
` + clientFlagsUsage

// mmiCommand parses the flags and arguments common to the MMI commands and
// returns a client.
func (c *cli) mmiCommand(cmd, usage string, args []string, nargs int) (*client.Client, []string, int, bool) {
	fs := c.flags(cmd, usage)
	cf := c.addClientFlags(fs)
	if code, ok := c.parse(fs, cmd, args); !ok {
		return nil, nil, code, false
	}
	if fs.NArg() != nargs {
		if nargs == 0 {
			return nil, nil, c.usageError(cmd, "unexpected arguments"), false
		}
		return nil, nil, c.usageError(cmd, "want exactly one NAME"), false
	}
	cl, err := c.connect(cf)
	if err != nil {
		return nil, nil, c.fail(cmd, err), false
	}
	return cl, fs.Args(), 0, true
}

func (c *cli) service(ctx context.Context, args []string) int {
	const cmd = "mdcli service"
	cl, args, code, ok := c.mmiCommand(cmd, serviceUsage, args, 1)
	if !ok {
		return code
	}
	defer cl.Close()
	// The raw request, so that any code the broker sends is printed.
	rep, err := cl.Request(ctx, client.MMIService, []byte(args[0]))
	if err != nil {
		return c.fail(cmd, err)
	}
	if len(rep) == 0 {
		return c.fail(cmd, client.ErrBadReply)
	}
	fmt.Fprintf(c.stdout, "%s\n", rep[0])
	switch string(rep[0]) {
	case "200":
		return exitOK
	case "404":
		return exitNoWorkers
	}
	return exitFail
}

func (c *cli) services(ctx context.Context, args []string) int {
	const cmd = "mdcli services"
	cl, _, code, ok := c.mmiCommand(cmd, servicesUsage, args, 0)
	if !ok {
		return code
	}
	defer cl.Close()
	names, err := cl.Services(ctx)
	if err != nil {
		return c.fail(cmd, err)
	}
	for _, n := range names {
		fmt.Fprintln(c.stdout, n)
	}
	return exitOK
}

func (c *cli) workers(ctx context.Context, args []string) int {
	const cmd = "mdcli workers"
	cl, args, code, ok := c.mmiCommand(cmd, workersUsage, args, 1)
	if !ok {
		return code
	}
	defer cl.Close()
	n, err := cl.Workers(ctx, args[0])
	if errors.Is(err, client.ErrUnknownService) {
		fmt.Fprintf(c.stderr, "%s: no workers for service %s (404: unknown to the broker)\n", cmd, args[0])
		return exitNoWorkers
	}
	if err != nil {
		return c.fail(cmd, err)
	}
	fmt.Fprintf(c.stdout, "idle=%d busy=%d queued=%d\n", n.Idle, n.Busy, n.Queued)
	return exitOK
}
