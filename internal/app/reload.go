package app

import (
	"strings"

	"github.com/majordomo-go/majordomo/internal/config"
	"github.com/majordomo-go/majordomo/titanic"
)

// reloadConfig reads the configuration again (file, environment, flags)
// and applies what can change at run time; the settings table's reload bit
// (config.Reload) decides which settings those are. A bad configuration
// changes nothing.
func (a *App) reloadConfig() {
	l, err := a.reload()
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			a.log.Error("reload failed; configuration unchanged", "error", line)
		}
		return
	}
	// Allow-list, passwords and policy are re-read without dropping
	// connected peers; their paths need a restart.
	if err := a.b.ReloadSecurity(); err != nil {
		a.log.Error("security reload failed; previous keys, passwords and policy kept", "error", err)
	}
	old := a.cfg
	next, changed, restart := config.Reload(old, l.Config)
	// next keeps the running endpoints and frame size: the broker has
	// nothing to keep as it was.
	if _, err := a.b.Reload(next.Broker(a.log)); err != nil {
		a.log.Error("reload failed; configuration unchanged", "error", config.Explain(err))
		return
	}
	a.level.Set(next.LogLevel)
	if a.http != nil && next.MetricsMaxServices != old.MetricsMaxServices {
		a.http.SetMetricsMaxServices(next.MetricsMaxServices)
	}
	a.cfg = next // drain-timeout is read from here.
	if len(changed) == 0 && len(restart) == 0 {
		a.log.Info("configuration reloaded: nothing changed", "file", l.File)
	} else {
		a.log.Info("configuration reloaded", "file", l.File, "changed", changed, "needs_restart", restart)
	}
	for _, name := range restart {
		running, configured := config.Format(old, name), config.Format(l.Config, name)
		if name == "titanic-store" { // May hold a password.
			running, configured = titanic.RedactURL(running), titanic.RedactURL(configured)
		}
		a.log.Warn("setting not applied: it needs a restart", "setting", name, "running", running, "configured", configured)
	}
}
