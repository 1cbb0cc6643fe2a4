package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// configSchema is the plugin's `config {}` block. Its defaults are the
// policy's, so an empty block, a plugin not yet configured and the README
// all mean the same thing.
func configSchema() *pb.ConfigSchema {
	d := policy.DefaultConfig()
	modes := []string{string(policy.ModeDefault), string(policy.ModeNeon), string(policy.ModePercentile), string(policy.ModePeak)}
	return schema.Of(
		schema.String("mode", string(d.Mode), "default: vCPUs and memory scale independently, with stabilization; neon: Neon's compute-unit formulas, the baseline; percentile: VPA-style usage percentiles; peak: sized for the highest need seen, never shrinks", modes...),
		schema.Number("cpu_target_load", d.CPUTargetLoad, "load1 per vCPU the CPU goal aims at, in (0,1]"),
		schema.Number("memory_target_usage", d.MemoryTargetUsage, "fraction of memory that used memory plus memory_headroom may fill, in (0,1]"),
		schema.Bytes("memory_headroom", d.MemoryHeadroom, "added to used memory before memory_target_usage applies"),
		schema.Number("cache_target_usage", d.CacheTargetUsage, "fraction of memory the cache working set may fill, in (0,1]"),
		schema.Number("cache_slope_cut", d.CacheSlopeCut, "working-set windows end where growth per second exceeds this multiple of the previous step's (>= 1)"),
		schema.Number("cache_projection_steps", d.CacheProjectionSteps, "steps of working-set growth projected past the last window kept (>= 0)"),
		schema.Number("neon_cu_vcpus", d.NeonCUVCPUs, "neon mode: vCPUs in one compute unit"),
		schema.Bytes("neon_cu_memory", d.NeonCUMemory, "neon mode: memory in one compute unit"),
		schema.Duration("cpu_trend_horizon", d.CPUTrendHorizon, "default mode: how far ahead the damped load1 trend is projected; 0 disables it"),
		schema.Number("cpu_pressure_threshold", d.CPUPressureThreshold, "default mode: CPU PSI some avg10 (percent) above which vCPUs grow at once"),
		schema.Number("memory_pressure_threshold", d.MemoryPressureThreshold, "default mode: memory PSI some avg10 (percent) above which memory grows at once"),
		schema.Duration("downscale_stabilization", d.DownscaleStabilization, "default mode: how long a lower goal must hold before each downscale step"),
		schema.Duration("downscale_cooldown_after_upscale", d.DownscaleCooldownAfterUpscale, "default mode: no downscale of a dimension this soon after it grew"),
		schema.Number("downscale_margin", d.DownscaleMargin, "default mode: a downscale needs a goal a unit and this fraction below the current size, in [0,1)"),
		schema.Number("max_downscale_step_units_cpu", float64(d.MaxDownscaleStepUnitsCPU), "default mode: most vCPU units one decision removes"),
		schema.Number("max_downscale_step_units_memory", float64(d.MaxDownscaleStepUnitsMemory), "default mode: most memory units one decision removes"),
		schema.Duration("refusal_backoff", d.RefusalBackoff, "default mode: wait after a refused downscale, doubled per consecutive refusal"),
		schema.Duration("refusal_backoff_max", d.RefusalBackoffMax, "default mode: the longest refusal back-off"),
		schema.Number("max_refusals", float64(d.MaxRefusals), "default mode: consecutive refusals after which a one-unit downscale is forced"),
		schema.Number("db_cpu_per_active_connection", d.DBCPUPerActiveConnection, "default mode: vCPUs the goal keeps per database connection running a statement, in [0,4]; 0 ignores connections"),
		schema.Duration("db_active_window", d.DBActiveWindow, "default mode: active connections are averaged over the samples this long before the latest"),
		schema.Bytes("db_memory_headroom", d.DBMemoryHeadroom, "default mode: memory the goal keeps beyond the database's working set"),
		schema.Number("percentile_target", d.PercentileTarget, "percentile mode: the usage percentile the size aims at, in (0,1]"),
		schema.Number("percentile_margin", d.PercentileMargin, "percentile mode: safety margin added to the percentiles (>= 0)"),
		schema.Duration("percentile_half_life", d.PercentileHalfLife, "percentile mode: a sample's weight halves every this long"),
		schema.Duration("percentile_memory_peak_interval", d.PercentileMemoryPeakInterval, "percentile mode: memory is sized for the peaks of intervals this long"),
	)
}

// defaultsJSON is the configuration of an empty block, laid under what
// SetConfig receives so that an attribute it omits keeps its default.
var defaultsJSON = func() []byte {
	b, err := schema.Defaults(configSchema())
	if err != nil {
		panic("scaler config schema: " + err.Error())
	}
	return b
}()

// wireConfig is the JSON SetConfig receives: numbers as float64, durations
// as nanoseconds, sizes as bytes.
type wireConfig struct {
	Mode                          string        `json:"mode"`
	CPUTargetLoad                 float64       `json:"cpu_target_load"`
	MemoryTargetUsage             float64       `json:"memory_target_usage"`
	MemoryHeadroom                uint64        `json:"memory_headroom"`
	CacheTargetUsage              float64       `json:"cache_target_usage"`
	CacheSlopeCut                 float64       `json:"cache_slope_cut"`
	CacheProjectionSteps          float64       `json:"cache_projection_steps"`
	NeonCUVCPUs                   float64       `json:"neon_cu_vcpus"`
	NeonCUMemory                  uint64        `json:"neon_cu_memory"`
	CPUTrendHorizon               time.Duration `json:"cpu_trend_horizon"`
	CPUPressureThreshold          float64       `json:"cpu_pressure_threshold"`
	MemoryPressureThreshold       float64       `json:"memory_pressure_threshold"`
	DownscaleStabilization        time.Duration `json:"downscale_stabilization"`
	DownscaleCooldownAfterUpscale time.Duration `json:"downscale_cooldown_after_upscale"`
	DownscaleMargin               float64       `json:"downscale_margin"`
	MaxDownscaleStepUnitsCPU      float64       `json:"max_downscale_step_units_cpu"`
	MaxDownscaleStepUnitsMemory   float64       `json:"max_downscale_step_units_memory"`
	RefusalBackoff                time.Duration `json:"refusal_backoff"`
	RefusalBackoffMax             time.Duration `json:"refusal_backoff_max"`
	MaxRefusals                   float64       `json:"max_refusals"`
	DBCPUPerActiveConnection      float64       `json:"db_cpu_per_active_connection"`
	DBActiveWindow                time.Duration `json:"db_active_window"`
	DBMemoryHeadroom              uint64        `json:"db_memory_headroom"`
	PercentileTarget              float64       `json:"percentile_target"`
	PercentileMargin              float64       `json:"percentile_margin"`
	PercentileHalfLife            time.Duration `json:"percentile_half_life"`
	PercentileMemoryPeakInterval  time.Duration `json:"percentile_memory_peak_interval"`
}

// decodeConfig turns SetConfig's JSON into a valid policy configuration, or
// field errors naming every attribute it rejects.
func decodeConfig(configJSON []byte) (policy.Config, error) {
	var w wireConfig
	if err := json.Unmarshal(defaultsJSON, &w); err != nil {
		return policy.Config{}, fmt.Errorf("scaler config defaults: %w", err)
	}
	if len(configJSON) > 0 {
		if err := sdk.DecodeConfig(configJSON, &w); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return policy.Config{}, sdk.FieldErrors{{Field: te.Field, Message: fmt.Sprintf("want a %s, got a JSON %s", te.Type, te.Value)}}
			}
			return policy.Config{}, err
		}
	}
	return w.policy()
}

func (w wireConfig) policy() (policy.Config, error) {
	var errs sdk.FieldErrors
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, sdk.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
		}
	}
	fraction := func(field string, v float64) {
		check(v > 0 && v <= 1, field, "must be in (0,1], got %g", v)
	}
	percent := func(field string, v float64) {
		check(v >= 0 && v <= 100, field, "must be a percentage in [0,100], got %g", v)
	}
	nonNegative := func(field string, d time.Duration) {
		check(d >= 0, field, "must not be negative, got %s", d)
	}
	whole := func(field string, v float64, limit float64) {
		check(v >= 1 && v <= limit && v == math.Trunc(v), field, "must be a whole number in [1,%g], got %g", limit, v)
	}

	switch policy.Mode(w.Mode) {
	case policy.ModeDefault, policy.ModeNeon, policy.ModePercentile, policy.ModePeak:
	default:
		check(false, "mode", `must be "default", "neon", "percentile" or "peak", got %q`, w.Mode)
	}
	fraction("cpu_target_load", w.CPUTargetLoad)
	fraction("memory_target_usage", w.MemoryTargetUsage)
	fraction("cache_target_usage", w.CacheTargetUsage)
	check(w.CacheSlopeCut >= 1, "cache_slope_cut", "must be >= 1, got %g", w.CacheSlopeCut)
	check(w.CacheProjectionSteps >= 0, "cache_projection_steps", "must be >= 0, got %g", w.CacheProjectionSteps)
	check(w.NeonCUVCPUs > 0, "neon_cu_vcpus", "must be > 0, got %g", w.NeonCUVCPUs)
	check(w.NeonCUMemory > 0, "neon_cu_memory", "must be > 0")
	nonNegative("cpu_trend_horizon", w.CPUTrendHorizon)
	percent("cpu_pressure_threshold", w.CPUPressureThreshold)
	percent("memory_pressure_threshold", w.MemoryPressureThreshold)
	nonNegative("downscale_stabilization", w.DownscaleStabilization)
	nonNegative("downscale_cooldown_after_upscale", w.DownscaleCooldownAfterUpscale)
	check(w.DownscaleMargin >= 0 && w.DownscaleMargin < 1, "downscale_margin", "must be in [0,1), got %g", w.DownscaleMargin)
	whole("max_downscale_step_units_cpu", w.MaxDownscaleStepUnitsCPU, 1e6)
	whole("max_downscale_step_units_memory", w.MaxDownscaleStepUnitsMemory, 1e6)
	nonNegative("refusal_backoff", w.RefusalBackoff)
	check(w.RefusalBackoffMax >= w.RefusalBackoff, "refusal_backoff_max", "must be at least refusal_backoff (%s), got %s", w.RefusalBackoff, w.RefusalBackoffMax)
	whole("max_refusals", w.MaxRefusals, math.MaxUint32)
	check(w.DBCPUPerActiveConnection >= 0 && w.DBCPUPerActiveConnection <= 4, "db_cpu_per_active_connection", "must be in [0,4], got %g", w.DBCPUPerActiveConnection)
	nonNegative("db_active_window", w.DBActiveWindow)
	fraction("percentile_target", w.PercentileTarget)
	check(w.PercentileMargin >= 0, "percentile_margin", "must be >= 0, got %g", w.PercentileMargin)
	check(w.PercentileHalfLife > 0, "percentile_half_life", "must be > 0, got %s", w.PercentileHalfLife)
	check(w.PercentileMemoryPeakInterval > 0, "percentile_memory_peak_interval", "must be > 0, got %s", w.PercentileMemoryPeakInterval)
	if len(errs) > 0 {
		return policy.Config{}, errs
	}
	return policy.Config{
		Mode:                          policy.Mode(w.Mode),
		CPUTargetLoad:                 w.CPUTargetLoad,
		MemoryTargetUsage:             w.MemoryTargetUsage,
		MemoryHeadroom:                w.MemoryHeadroom,
		CacheTargetUsage:              w.CacheTargetUsage,
		CacheSlopeCut:                 w.CacheSlopeCut,
		CacheProjectionSteps:          w.CacheProjectionSteps,
		NeonCUVCPUs:                   w.NeonCUVCPUs,
		NeonCUMemory:                  w.NeonCUMemory,
		CPUTrendHorizon:               w.CPUTrendHorizon,
		CPUPressureThreshold:          w.CPUPressureThreshold,
		MemoryPressureThreshold:       w.MemoryPressureThreshold,
		DownscaleStabilization:        w.DownscaleStabilization,
		DownscaleCooldownAfterUpscale: w.DownscaleCooldownAfterUpscale,
		DownscaleMargin:               w.DownscaleMargin,
		MaxDownscaleStepUnitsCPU:      int(w.MaxDownscaleStepUnitsCPU),
		MaxDownscaleStepUnitsMemory:   int(w.MaxDownscaleStepUnitsMemory),
		RefusalBackoff:                w.RefusalBackoff,
		RefusalBackoffMax:             w.RefusalBackoffMax,
		MaxRefusals:                   uint32(w.MaxRefusals),
		DBCPUPerActiveConnection:      w.DBCPUPerActiveConnection,
		DBActiveWindow:                w.DBActiveWindow,
		DBMemoryHeadroom:              w.DBMemoryHeadroom,
		PercentileTarget:              w.PercentileTarget,
		PercentileMargin:              w.PercentileMargin,
		PercentileHalfLife:            w.PercentileHalfLife,
		PercentileMemoryPeakInterval:  w.PercentileMemoryPeakInterval,
	}, nil
}
