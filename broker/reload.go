package broker

import (
	"fmt"
	"slices"

	"github.com/majordomo-go/majordomo/internal/dispatch"
)

// Reload applies new settings to a running broker. Settings that can change
// at run time (timers, limits, redelivery, logger) take effect at once and
// are listed in changed; settings that cannot (Endpoints, MaxFrameSize,
// which libzmq applies when the socket is bound) are left as they were and
// listed in restart. An invalid cfg changes nothing and returns an error
// wrapping ErrConfig.
func (b *Broker) Reload(cfg Config) (changed, restart []string, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	apply := func() {
		old := b.cfg
		diff := func(name string, a, c any) {
			if a != c {
				changed = append(changed, fmt.Sprintf("%s: %v -> %v", name, a, c))
			}
		}
		diff("heartbeat", old.HeartbeatInterval, cfg.HeartbeatInterval)
		diff("liveness", old.HeartbeatLiveness, cfg.HeartbeatLiveness)
		diff("request-timeout", old.RequestTimeout, cfg.RequestTimeout)
		diff("max-queue", old.MaxQueue, cfg.MaxQueue)
		diff("max-queued-bytes", old.MaxQueuedBytes, cfg.MaxQueuedBytes)
		diff("max-services", old.MaxServices, cfg.MaxServices)
		diff("service-ttl", old.ServiceTTL, cfg.ServiceTTL)
		diff("max-attempts", old.MaxAttempts, cfg.MaxAttempts)
		diff("no-redelivery", old.DisableRedelivery, cfg.DisableRedelivery)
		diff("max-frames", old.MaxFrames, cfg.MaxFrames)
		diff("max-client-in-flight", old.MaxClientInFlight, cfg.MaxClientInFlight)
		if !slices.Equal(old.Endpoints, cfg.Endpoints) {
			restart = append(restart, "endpoint")
		}
		if old.MaxFrameSize != cfg.MaxFrameSize {
			restart = append(restart, "max-frame-size")
		}
		cfg.Endpoints, cfg.MaxFrameSize = old.Endpoints, old.MaxFrameSize
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
		return nil, nil, ErrClosed
	}
	return changed, restart, nil
}
