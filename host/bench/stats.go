package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// latencies summarises timed calls.
type latencies struct {
	P50, P99 time.Duration
	N        int
}

// summarize takes the nearest-rank p50 and p99 of samples (left unsorted).
func summarize(samples []time.Duration) (latencies, error) {
	if len(samples) == 0 {
		return latencies{}, fmt.Errorf("no samples to summarize")
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return latencies{P50: percentile(sorted, 50), P99: percentile(sorted, 99), N: len(sorted)}, nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted,
// which must not be empty: the smallest sample that at least p% of the
// samples do not exceed. Unlike interpolation it is always a measured value.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %-8v p99 %-8v (%d calls)", round3(l.P50), round3(l.P99), l.N)
}

// round3 rounds d to three significant digits, for display: the digits
// beyond are noise from one run to the next.
func round3(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for d >= 1000*unit {
		unit *= 10
	}
	return d.Round(unit)
}
