package dispatch

import (
	"slices"
	"time"
)

// LatencyBuckets are the upper bounds of the latency histograms (queue wait
// and service time). They span 50 µs to 60 s, enough for both an in-memory
// echo and a slow batch job. They are the broker's buckets, so that metrics
// of both protocols line up.
var LatencyBuckets = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
}

// Histogram is a non-cumulative latency histogram: Counts[i] is the number
// of observations in (LatencyBuckets[i-1], LatencyBuckets[i]], and the last
// element counts those above the largest bound. The zero value is empty;
// Counts is allocated on the first observation.
type Histogram struct {
	Counts []uint64
	Count  uint64
	Sum    time.Duration
	Max    time.Duration
}

// Observe records one latency.
func (h *Histogram) Observe(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]uint64, len(LatencyBuckets)+1)
	}
	if d < 0 {
		d = 0
	}
	i, _ := slices.BinarySearch(LatencyBuckets, d)
	h.Counts[i]++
	h.Count++
	h.Sum += d
	h.Max = max(h.Max, d)
}

// Mean returns the average observation, or 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / time.Duration(h.Count)
}

// Quantile estimates the q-quantile (0 < q <= 1) by linear interpolation
// inside the bucket that holds it; above the last bound it returns Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var seen float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			if i == len(LatencyBuckets) {
				return h.Max
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = LatencyBuckets[i-1]
			}
			hi := min(LatencyBuckets[i], max(h.Max, lo))
			frac := (rank - seen) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		seen += float64(c)
	}
	return h.Max
}

// Clone returns a deep copy, for snapshots handed to other goroutines.
func (h Histogram) Clone() Histogram {
	h.Counts = slices.Clone(h.Counts)
	return h
}
