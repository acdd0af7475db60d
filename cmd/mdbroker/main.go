// Command mdbroker runs a Majordomo broker: 7/MDP and 18/MDP clients and
// workers on the same endpoints, with the 8/MMI management services, and
// optionally an HTTP server with Prometheus metrics and a live status page.
//
// Settings come from flags, MDBROKER_* environment variables and a TOML
// config file (--config); see mdbroker --help. SIGHUP reloads the settings
// that can change at run time, SIGTERM or SIGINT drains and exits, and a
// second SIGTERM or SIGINT exits at once. The broker itself is put together
// and run by internal/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/majordomo-go/majordomo/internal/app"
	"github.com/majordomo-go/majordomo/internal/config"
)

// setMaxProcs applies the procs setting; the in-process tests replace it,
// so that they do not change their own process's GOMAXPROCS.
var setMaxProcs = runtime.GOMAXPROCS

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses args, runs the broker until it is stopped by signals, and
// returns the exit status: 0 on a clean shutdown, 1 on a runtime failure, 2
// on bad usage or configuration.
func run(args []string, stderr io.Writer) int {
	return runWith(args, os.Environ(), os.Stdout, stderr)
}

func runWith(args, environ []string, stdout, stderr io.Writer) int {
	loaded, err := config.Load(args, environ)
	switch {
	case errors.Is(err, config.ErrHelp):
		config.Usage(stderr)
		return 0
	case err != nil:
		// One line per problem, each naming the flag, variable or key.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "mdbroker: %s\n", line)
		}
		return 2
	case loaded.PrintConfig:
		if err := config.WriteTOML(stdout, loaded.Config, loaded.Sources); err != nil {
			fmt.Fprintf(stderr, "mdbroker: %v\n", err)
			return 1
		}
		return 0
	}
	if n := loaded.MaxProcs(environ); n > 0 {
		setMaxProcs(n)
	}
	// Take the signals before anything starts, so that none is lost and
	// SIGHUP never kills the process with its default action.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	a, err := app.New(app.Options{Loaded: loaded, Log: stderr, Signals: sigs,
		// SIGHUP reads the same sources again: environ, not os.Environ, so
		// that what was injected is what is reloaded.
		Reload: func() (*config.Loaded, error) { return config.Load(args, environ) }})
	if err != nil {
		fmt.Fprintf(stderr, "mdbroker: %v\n", err)
		if errors.Is(err, app.ErrConfig) {
			return 2
		}
		return 1
	}
	if err := a.Run(context.Background()); err != nil {
		return 1 // Logged by Run.
	}
	return 0
}
