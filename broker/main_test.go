package broker

import (
	"testing"

	"github.com/majordomo-go/majordomo/internal/leakcheck"
)

// TestMain fails the package if any test leaves broker goroutines behind:
// every broker, peer and timer a test starts must be gone when it ends.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "majordomo/broker.", "majordomo/internal/transport.")
}
