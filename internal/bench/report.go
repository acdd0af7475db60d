package bench

import (
	"fmt"
	"io"
	"strings"
)

// Describe is a one-line summary of the load cfg puts on a server.
func Describe(cfg Config) string {
	var b strings.Builder
	switch {
	case cfg.Titanic:
		fmt.Fprintf(&b, "Titanic durable submissions (titanic.request for %s)", TitanicTarget)
	default:
		fmt.Fprintf(&b, "%d worker(s)", cfg.Workers)
		if cfg.Services > 1 {
			fmt.Fprintf(&b, " over %d services", cfg.Services)
		}
	}
	fmt.Fprintf(&b, ", %d client(s) x window %d", cfg.Clients, cfg.Window)
	if cfg.Window == 1 {
		b.WriteString(" (synchronous)")
	}
	fmt.Fprintf(&b, ", %d B body in %d frame(s), MDP/0.%d, peers %s", cfg.Size, cfg.Frames, cfg.Protocol, cfg.Peers)
	return b.String()
}

// WriteText prints r for people.
func WriteText(w io.Writer, r *Result) {
	fmt.Fprintf(w, "mdbench: %s\n", Describe(r.Config))
	fmt.Fprintf(w, "host: %d CPUs, GOMAXPROCS %d, affinity %s, %s\n", r.Host.NumCPU, r.Host.GOMAXPROCS, r.Host.Affinity, r.Host.GoVersion)
	for _, p := range r.Phases {
		fmt.Fprintf(w, "\n%s: %s at %s\n", p.Name, p.Server, p.Endpoint)
		fmt.Fprintf(w, "  %d requests in %.2f s = %.0f req/s", p.Requests, p.Seconds, p.RPS)
		if p.Errors > 0 {
			fmt.Fprintf(w, ", %d ERRORS", p.Errors)
		}
		fmt.Fprintln(w)
		l := p.Latency
		fmt.Fprintf(w, "  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
		fmt.Fprintf(w, "  cpu per request:")
		total := 0.0
		for _, c := range p.CPU {
			if c.Error != "" {
				fmt.Fprintf(w, "  %s: %s", c.Name, c.Error)
				continue
			}
			fmt.Fprintf(w, "  %s %.2f us", c.Name, c.USPerReq)
			switch c.Kind {
			case "threads":
				fmt.Fprint(w, " (its threads only)")
			case "remote":
				fmt.Fprint(w, " (asked with $CPU)")
			default:
				total += c.USPerReq
			}
		}
		fmt.Fprintf(w, "  | processes total %.2f us\n", total)
		fmt.Fprintf(w, "  context switches per request:")
		for _, c := range p.CPU {
			if c.Kind == "process" {
				fmt.Fprintf(w, "  %s %.2f", c.Name, c.SwitchesPerReq)
			}
		}
		fmt.Fprintln(w)
	}
	if x := r.BrokerOverRaw; x != nil {
		fmt.Fprintf(w, "\nbroker/raw: throughput %.2f, p50 latency %.2fx, p99 latency %.2fx\n", x.Throughput, x.P50, x.P99)
	}
}
