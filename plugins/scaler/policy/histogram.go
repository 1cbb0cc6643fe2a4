package policy

import (
	"math"
	"slices"
	"time"
)

// histogram is a decaying histogram of one dimension's usage, the
// Kubernetes VPA recommender's in miniature: exponential buckets, and a
// sample's weight halves every half-life. Rather than decaying every stored
// weight at each sample, a new sample weighs 2^((t-Ref)/half-life) units
// (VPA's trick); when weights grow large they are renormalised by moving Ref
// forward. Weights are integers so that the state round-trips exactly and a
// replay gives the same bytes.
type histogram struct {
	Ref int64    `json:"r"` // Unix nanoseconds the weights are relative to
	Idx []int    `json:"i"` // bucket indices, ascending
	W   []uint64 `json:"w"` // weight of each bucket in Idx
}

const (
	// bucketRatio is VPA's: each bucket is 5% wider than the previous.
	bucketRatio = 1.05
	// unitWeight is a sample's weight at Ref; large enough that a sample a
	// few half-lives old still weighs more than the rounding.
	unitWeight = 1 << 10
	// maxWeightExp is where weights are renormalised: well below 2^53 even
	// summed over a month of samples, so percentiles stay exact.
	maxWeightExp = 24
)

// bucketing maps a value in base units to its bucket: bucket b starts at
// first*(ratio^b - 1)/(ratio - 1), so the first bucket is first wide.
type bucketing struct{ first float64 }

var (
	cpuBuckets = bucketing{first: 10}       // milli-vCPU, VPA's 0.01 cores
	memBuckets = bucketing{first: 10 << 20} // bytes, VPA's 10MB
)

func (b bucketing) index(v float64) int {
	return int(math.Floor(math.Log1p(max(0, v)*(bucketRatio-1)/b.first) / math.Log(bucketRatio)))
}

// end is where bucket i stops: a percentile falls somewhere in its bucket,
// and VPA answers with the bucket's end, erring on the side of more.
func (b bucketing) end(i int) float64 {
	return b.first * (math.Pow(bucketRatio, float64(i+1)) - 1) / (bucketRatio - 1)
}

// add records v observed at t.
func (h *histogram) add(b bucketing, v float64, t int64, halfLife time.Duration) {
	if len(h.Idx) == 0 {
		h.Ref = t
	}
	if n := int(float64(t-h.Ref)/float64(halfLife)) - maxWeightExp; n > 0 {
		h.shift(n, halfLife)
	}
	w := uint64(math.Round(unitWeight * math.Exp2(float64(t-h.Ref)/float64(halfLife))))
	if w == 0 {
		return // far older than the history: it would weigh nothing
	}
	i := b.index(v)
	at, found := slices.BinarySearch(h.Idx, i)
	if found {
		h.W[at] += w
		return
	}
	h.Idx = slices.Insert(h.Idx, at, i)
	h.W = slices.Insert(h.W, at, w)
}

// shift moves Ref n half-lives forward, halving every weight n times and
// forgetting the buckets that no longer weigh anything.
func (h *histogram) shift(n int, halfLife time.Duration) {
	h.Ref += int64(n) * int64(halfLife)
	idx, w := h.Idx[:0], h.W[:0]
	for k, i := range h.Idx {
		if v := h.W[k] >> min(n, 63); v > 0 {
			idx, w = append(idx, i), append(w, v)
		}
	}
	h.Idx, h.W = idx, w
}

// percentile is the end of the bucket where the cumulative weight reaches
// fraction p of the total; false when the histogram is empty.
func (h *histogram) percentile(b bucketing, p float64) (float64, bool) {
	var total uint64
	for _, w := range h.W {
		total += w
	}
	if total == 0 {
		return 0, false
	}
	threshold, cum := p*float64(total), uint64(0)
	for k, w := range h.W {
		cum += w
		if float64(cum) >= threshold {
			return b.end(h.Idx[k]), true
		}
	}
	return b.end(h.Idx[len(h.Idx)-1]), true
}

// clone is a copy that shares no memory with h.
func (h histogram) clone() histogram {
	return histogram{Ref: h.Ref, Idx: slices.Clone(h.Idx), W: slices.Clone(h.W)}
}
