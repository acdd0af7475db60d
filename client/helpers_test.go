package client_test

import (
	"testing"

	"github.com/majordomo-go/majordomo/broker"
	"github.com/majordomo-go/majordomo/internal/testutil"
)

// Short names for the shared fixtures in internal/testutil.
const testHeartbeat = testutil.Heartbeat

var (
	logger      = testutil.Logger
	runWorker   = testutil.RunWorker
	echo        = testutil.Echo
	connect     = testutil.Connect
	waitService = testutil.WaitService
	versions    = testutil.Versions
	strs        = testutil.Strs
)

// testBroker wraps testutil.Broker with the names these tests use.
type testBroker struct {
	*testutil.Broker
	endpoint string
}

func startBroker(t testing.TB, tweak ...func(*broker.Config)) *testBroker {
	t.Helper()
	b := testutil.StartBroker(t, tweak...)
	return &testBroker{Broker: b, endpoint: b.Endpoint}
}

func (tb *testBroker) restart() { tb.Restart() }
