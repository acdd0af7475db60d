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

With several brokers (-b A,B) every broker is asked and one line per broker
is printed, "ENDPOINT CODE" (CODE "-" when it gave no answer, the error on
standard error): mmi.service answers for the broker asked only.

Exit status: 0 for 200, 3 for 404 (no workers), 1 otherwise (501, broker
unreachable, error). With several brokers: 0 if any said 200, 3 if every
one said 404, else 1.

Flags:
` + clientFlagsUsage

const servicesUsage = `Usage: mdcli services [flags]

List the services that have at least one worker, one per line
(mmi.services, an extension of this project's broker). With several
brokers (-b A,B) the list is that of the one broker that answered.

Flags:
` + clientFlagsUsage

const workersUsage = `Usage: mdcli workers [flags] NAME

Print the idle worker, busy worker and queued request counts of NAME as
"idle=N busy=N queued=N" (mmi.workers, an extension of this project's
broker). Exit status 3 if the broker does not know NAME (no workers and
nothing queued), 1 if it is unreachable or on another error. With several
brokers (-b A,B) the counts are those of the one broker that answered; ask
each with -b ENDPOINT for the others.

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
	if len(cl.Brokers()) > 1 {
		return c.serviceEverywhere(ctx, cl, args[0])
	}
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

// serviceEverywhere asks every broker about name and prints one line each.
func (c *cli) serviceEverywhere(ctx context.Context, cl *client.Client, name string) int {
	const cmd = "mdcli service"
	any200, all404 := false, true
	for _, a := range cl.ServiceByBroker(ctx, name) {
		switch {
		case a.Err != nil:
			all404 = false
			fmt.Fprintf(c.stdout, "%s -\n", a.Broker)
			c.fail(cmd, fmt.Errorf("%s: %w", a.Broker, a.Err))
		case a.Exists:
			any200, all404 = true, false
			fmt.Fprintf(c.stdout, "%s 200\n", a.Broker)
		default:
			fmt.Fprintf(c.stdout, "%s 404\n", a.Broker)
		}
	}
	switch {
	case any200:
		return exitOK
	case all404:
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
