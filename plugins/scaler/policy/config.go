package policy

import "time"

// Mode selects the algorithm.
type Mode string

const (
	// ModeDefault scales vCPUs and memory independently, with stabilization,
	// hysteresis, step limits and refusal back-off.
	ModeDefault Mode = "default"
	// ModeNeon reproduces Neon's autoscaler-agent formulas: the baseline.
	ModeNeon Mode = "neon"
	// ModePercentile is a VPA-style recommender: a percentile of a decaying
	// usage histogram, applied when the size leaves a range (percentile.go).
	ModePercentile Mode = "percentile"
	// ModePeak sizes for the highest need seen and never shrinks: static
	// provisioning for the peak (peak.go).
	ModePeak Mode = "peak"
)

// Config parameterises both modes. Decide assumes it is valid (the plugin
// validates it when it arrives).
type Config struct {
	Mode Mode

	// Targets shared by both modes (their defaults are Neon's).
	CPUTargetLoad        float64 // load1 per vCPU aimed at
	MemoryTargetUsage    float64 // fraction of memory that used+headroom may fill
	MemoryHeadroom       uint64  // bytes added to used memory
	CacheTargetUsage     float64 // fraction of memory the cache working set may fill
	CacheSlopeCut        float64 // working-set windows end where growth exceeds this multiple of the previous step's
	CacheProjectionSteps float64 // working-set steps projected ahead

	// Neon's compute unit.
	NeonCUVCPUs  float64
	NeonCUMemory uint64

	// Default mode.
	CPUTrendHorizon               time.Duration
	CPUPressureThreshold          float64 // PSI avg10 percent
	MemoryPressureThreshold       float64 // PSI avg10 percent
	DownscaleStabilization        time.Duration
	DownscaleCooldownAfterUpscale time.Duration
	DownscaleMargin               float64
	MaxDownscaleStepUnitsCPU      int
	MaxDownscaleStepUnitsMemory   int
	RefusalBackoff                time.Duration
	RefusalBackoffMax             time.Duration
	MaxRefusals                   uint32
	// Default mode, from the database's signals.
	DBCPUPerActiveConnection float64 // vCPUs per connection running a statement
	DBActiveWindow           time.Duration
	DBMemoryHeadroom         uint64 // bytes added to the database's working set

	// Percentile mode.
	PercentileTarget             float64 // percentile of usage the size aims at, in (0,1]
	PercentileMargin             float64 // safety margin added to the percentiles
	PercentileHalfLife           time.Duration
	PercentileMemoryPeakInterval time.Duration
}

// DefaultConfig is the configuration of an empty `config {}` block.
func DefaultConfig() Config {
	return Config{
		Mode:                 ModeDefault,
		CPUTargetLoad:        0.9,
		MemoryTargetUsage:    0.75,
		MemoryHeadroom:       100 << 20,
		CacheTargetUsage:     0.75,
		CacheSlopeCut:        3,
		CacheProjectionSteps: 0.5,

		NeonCUVCPUs:  1,
		NeonCUMemory: 4 << 30,

		CPUTrendHorizon:               30 * time.Second,
		CPUPressureThreshold:          10,
		MemoryPressureThreshold:       5,
		DownscaleStabilization:        time.Minute,
		DownscaleCooldownAfterUpscale: 2 * time.Minute,
		DownscaleMargin:               0.15,
		// CPU is cheap to unplug and replug; memory unplug can fail in the
		// guest and is slow, so it steps more carefully.
		MaxDownscaleStepUnitsCPU:    2,
		MaxDownscaleStepUnitsMemory: 1,
		RefusalBackoff:              30 * time.Second,
		RefusalBackoffMax:           10 * time.Minute,
		MaxRefusals:                 3,
		// Half a vCPU per running statement: under TCG, 4 pgbench clients
		// doubled their TPS from 1 to 2 vCPUs. The window spans a few
		// samples, so that one snapshot of the process table does not
		// decide alone.
		DBCPUPerActiveConnection: 0.5,
		DBActiveWindow:           15 * time.Second,
		// Backends' private memory (work_mem) and the kernel's, beside the
		// working set.
		DBMemoryHeadroom: 256 << 20,

		// VPA's recommender defaults.
		PercentileTarget:             0.9,
		PercentileMargin:             0.15,
		PercentileHalfLife:           24 * time.Hour,
		PercentileMemoryPeakInterval: 24 * time.Hour,
	}
}
