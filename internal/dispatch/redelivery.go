package dispatch

// Verdict is what happens to a job whose worker was lost while holding it.
type Verdict uint8

const (
	// Redeliver: put the job back at the head of its queue.
	Redeliver Verdict = iota
	// DropDisabled: redelivery is off for this job.
	DropDisabled
	// DropExhausted: the job has been delivered as often as allowed.
	DropExhausted
)

// String names the verdict as logs and metrics do.
func (v Verdict) String() string {
	switch v {
	case Redeliver:
		return "redeliver"
	case DropDisabled:
		return "worker_lost"
	case DropExhausted:
		return "attempts_exhausted"
	}
	return "unknown"
}

// Redelivery is the policy for jobs held by a worker that dies: redeliver
// them, up to MaxAttempts deliveries in all, or drop them.
type Redelivery struct {
	// MaxAttempts is how many times one job may be handed to a worker,
	// the first delivery included (values below 1 count as 1).
	MaxAttempts int
	// Disabled drops every such job.
	Disabled bool
}

// Decide returns the verdict for a job already delivered attempts times.
func (r Redelivery) Decide(attempts int) Verdict {
	switch {
	case r.Disabled:
		return DropDisabled
	case attempts >= max(r.MaxAttempts, 1):
		return DropExhausted
	}
	return Redeliver
}
