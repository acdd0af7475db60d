// Package ratelog rate-limits log lines that a peer can provoke (refused
// handshakes, refused requests, store failures), so that a flood cannot
// flood the log; the counters beside each line stay the exact record.
package ratelog

import (
	"sync"
	"time"
)

// Limiter lets Burst lines through per Window and counts the others; the
// next line let through reports how many were held back. The zero Window
// or Burst lets every line through. It is safe for concurrent use.
type Limiter struct {
	Window time.Duration
	Burst  int

	mu         sync.Mutex
	start      time.Time // Of the current window.
	n          int       // Lines let through in it.
	suppressed int       // Lines held back since the last one let through.
}

// Allow reports whether a line may be logged at now and, if so, how many
// lines were held back before it.
func (l *Limiter) Allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.Window {
		l.start, l.n = now, 0
	}
	if l.Burst > 0 && l.n >= l.Burst {
		l.suppressed++
		return 0, false
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return suppressed, true
}
