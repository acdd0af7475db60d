package broker

import (
	"slices"

	"github.com/majordomo-go/majordomo/internal/dispatch"
)

// Reload applies new settings to a running broker. Settings that can change
// at run time (timers, limits, redelivery, logger) take effect at once.
// Those that New alone applies keep their running values: Endpoints and
// MaxFrameSize, which the transport applies when it binds, Internal and
// Security. kept names, by Config field, those of the first two that cfg
// would have changed. An invalid cfg changes nothing and returns a
// *ConfigError.
func (b *Broker) Reload(cfg Config) (kept []string, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	apply := func() {
		old := b.cfg
		if !slices.Equal(old.Endpoints, cfg.Endpoints) {
			kept = append(kept, "Endpoints")
		}
		if old.MaxFrameSize != cfg.MaxFrameSize {
			kept = append(kept, "MaxFrameSize")
		}
		cfg.Endpoints, cfg.MaxFrameSize = old.Endpoints, old.MaxFrameSize
		cfg.Internal, cfg.Security = old.Internal, old.Security
		b.cfg = cfg
		b.budget.Max = cfg.MaxQueuedBytes
		b.pool.SetLimits(cfg.limits(b.budget))
		if old.HeartbeatInterval != cfg.HeartbeatInterval {
			b.beat = dispatch.Ticker{Period: cfg.HeartbeatInterval}
			b.beat.Start(b.now)
			// A zero Ticker is due at once: run the timers on the new period now.
			b.house = dispatch.Ticker{Period: b.houseInterval()}
			select { // Replace a period the ticker has not taken yet.
			case <-b.tickReset:
			default:
			}
			b.tickReset <- b.houseInterval()
		}
		b.log = cfg.Logger
	}
	if !b.inLoop(apply) {
		return nil, ErrClosed
	}
	return kept, nil
}
