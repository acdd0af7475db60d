// Package leakcheck fails a test binary whose tests leave goroutines of this
// module running: every test must stop what it starts.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then, if they passed, waits up to three seconds for
// every goroutine whose stack mentions one of the given package paths (for
// example "majordomo/broker.") to finish; if any remains, it prints their
// stacks and exits 1. Use it as the body of TestMain.
func Main(m *testing.M, packages ...string) {
	code := m.Run()
	if code == 0 {
		if err := check(packages); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func check(packages []string) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "leakcheck.check") {
				continue // This goroutine.
			}
			for _, p := range packages {
				if strings.Contains(g, p) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked goroutines:\n%s", strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
