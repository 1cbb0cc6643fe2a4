package fleet

import (
	"math"
	"strconv"
	"strings"
)

// Size is a compute size in both dimensions placement accounts for. vCPUs
// are in thousandths, as on the wire, so fractional sizes stay exact.
type Size struct {
	VCPUMilli   int64
	MemoryBytes uint64
}

func (s Size) String() string {
	return formatVCPU(s.VCPUMilli) + "/" + formatBytes(s.MemoryBytes)
}

// fits reports whether s fits within limit in both dimensions.
func (s Size) fits(limit Size) bool {
	return s.VCPUMilli <= limit.VCPUMilli && s.MemoryBytes <= limit.MemoryBytes
}

func (s Size) add(o Size) Size {
	return Size{VCPUMilli: s.VCPUMilli + o.VCPUMilli, MemoryBytes: s.MemoryBytes + o.MemoryBytes}
}

// sub is only called with o fitting within s: memory is unsigned.
func (s Size) sub(o Size) Size {
	return Size{VCPUMilli: s.VCPUMilli - o.VCPUMilli, MemoryBytes: s.MemoryBytes - o.MemoryBytes}
}

// fraction is floor(frac × s) per dimension, clamped to [0, s]: watermarks
// are compared against whole units, and a float product must never round a
// limit above the capacity it is a fraction of.
func (s Size) fraction(frac float64) Size {
	return Size{VCPUMilli: floorFraction(s.VCPUMilli, frac), MemoryBytes: floorFraction(s.MemoryBytes, frac)}
}

func floorFraction[T int64 | uint64](v T, frac float64) T {
	f := math.Floor(frac * float64(v))
	switch {
	case f <= 0:
		return 0
	case f >= float64(v):
		return v
	}
	return T(f)
}

// headroom is the share of capacity that free leaves in its tightest
// dimension: the dimension that runs out first is the one that matters.
func headroom(free, capacity Size) float64 {
	return min(float64(free.VCPUMilli)/float64(capacity.VCPUMilli), float64(free.MemoryBytes)/float64(capacity.MemoryBytes))
}

func formatVCPU(milli int64) string {
	return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64) + " vCPU"
}

var byteUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}

// formatBytes prints b in the largest binary unit it reaches, exactly when
// it is a whole number of that unit (reservations usually are) and to two
// decimals otherwise.
func formatBytes(b uint64) string {
	i, unit := 0, uint64(1)
	for i+1 < len(byteUnits) && b >= unit<<10 {
		i, unit = i+1, unit<<10
	}
	if b%unit == 0 {
		return strconv.FormatUint(b/unit, 10) + byteUnits[i]
	}
	s := strconv.FormatFloat(float64(b)/float64(unit), 'f', 2, 64)
	return strings.TrimRight(strings.TrimRight(s, "0"), ".") + byteUnits[i]
}
