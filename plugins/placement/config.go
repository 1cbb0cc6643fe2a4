package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/placement/fleet"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// maxMigrationsLimit bounds max_migrations_per_node far above any sane
// value, so that the float the host sends always converts to an int.
const maxMigrationsLimit = 1000

func configSchema() *pb.ConfigSchema {
	return schema.Of(
		schema.String("strategy", string(fleet.Spread),
			`How a new VM's node (and a migration's target) is chosen among those it fits on: "spread" keeps the most headroom, "pack" is the best fit.`,
			string(fleet.Spread), string(fleet.Pack)),
		schema.Duration("dirty_rate_weight", 10*time.Second,
			"Migration cost = reserved memory + dirty bytes per second x this: how much a VM's dirty rate makes it dearer to move."),
		schema.Number("max_migrations_per_node", 4,
			fmt.Sprintf("Most migrations one plan gives a node, as source or target (a whole number, 1 to %d).", maxMigrationsLimit)),
		schema.Number("target_headroom", 0,
			"Fraction of capacity a migration target must keep free below its own watermark once the VM has arrived, in [0, 1)."),
	)
}

// config is the JSON SetConfig receives, in the types the schema sends.
type config struct {
	Strategy             fleet.Strategy `json:"strategy"`
	DirtyRateWeight      time.Duration  `json:"dirty_rate_weight"`
	MaxMigrationsPerNode float64        `json:"max_migrations_per_node"`
	TargetHeadroom       float64        `json:"target_headroom"`
}

// defaultConfig is the schema's defaults, so that they are written once.
func defaultConfig() config {
	b, err := schema.Defaults(configSchema())
	if err != nil {
		panic("placement config schema: " + err.Error())
	}
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		panic("placement config schema defaults: " + err.Error())
	}
	return c
}

// parseConfig decodes SetConfig's JSON over the defaults and validates it,
// naming every attribute it rejects.
func parseConfig(configJSON []byte) (fleet.Policy, error) {
	c := defaultConfig()
	if len(bytes.TrimSpace(configJSON)) > 0 {
		if err := sdk.DecodeConfig(configJSON, &c); err != nil {
			return fleet.Policy{}, err
		}
	}
	var errs sdk.FieldErrors
	if c.Strategy != fleet.Spread && c.Strategy != fleet.Pack {
		errs = append(errs, sdk.FieldError{Field: "strategy", Message: fmt.Sprintf("must be %q or %q, got %q", fleet.Spread, fleet.Pack, c.Strategy)})
	}
	if c.DirtyRateWeight < 0 {
		errs = append(errs, sdk.FieldError{Field: "dirty_rate_weight", Message: fmt.Sprintf("must be >= 0, got %s", c.DirtyRateWeight)})
	}
	if n := c.MaxMigrationsPerNode; n != math.Trunc(n) || n < 1 || n > maxMigrationsLimit {
		errs = append(errs, sdk.FieldError{Field: "max_migrations_per_node", Message: fmt.Sprintf("must be a whole number from 1 to %d, got %g", maxMigrationsLimit, n)})
	}
	if h := c.TargetHeadroom; math.IsNaN(h) || h < 0 || h >= 1 {
		errs = append(errs, sdk.FieldError{Field: "target_headroom", Message: fmt.Sprintf("must be in [0, 1), got %g", h)})
	}
	if len(errs) > 0 {
		return fleet.Policy{}, errs
	}
	return fleet.Policy{
		Strategy:             c.Strategy,
		DirtyRateWeight:      c.DirtyRateWeight,
		MaxMigrationsPerNode: int(c.MaxMigrationsPerNode),
		TargetHeadroom:       c.TargetHeadroom,
	}, nil
}
