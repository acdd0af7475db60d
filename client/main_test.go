package client_test

import (
	"testing"

	"github.com/majordomo-go/majordomo/internal/leakcheck"
)

// TestMain fails the run if any goroutine of the client, worker or broker
// packages outlives the tests: every test must clean up after itself.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "majordomo/client.", "majordomo/worker.", "majordomo/broker.")
}
