package config

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/hcl/v2"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// attrs reads one block's attributes. Each reader leaves its destination
// untouched when the attribute is absent (so defaults survive) and records a
// diagnostic at the attribute when its value is wrong, so that one pass
// reports every mistake in the file.
type attrs struct {
	m     hcl.Attributes
	diags *hcl.Diagnostics
}

// rangeOf is the range of the attribute's value, where value errors point.
func (a attrs) rangeOf(name string) hcl.Range { return a.m[name].Expr.Range() }

func (a attrs) has(name string) bool { _, ok := a.m[name]; return ok }

func (a attrs) errorf(name, summary, format string, args ...any) {
	*a.diags = append(*a.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  a.rangeOf(name).Ptr(),
	})
}

func (a attrs) invalid(name, format string, args ...any) {
	a.errorf(name, "Invalid value for "+name, format, args...)
}

// convert evaluates an attribute the way a plugin's `config {}` block is
// evaluated, so sizes and durations are written alike everywhere in the file.
func (a attrs) convert(name string, t pb.AttributeType) (any, bool) {
	attr, ok := a.m[name]
	if !ok {
		return nil, false
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		*a.diags = append(*a.diags, diags...)
		return nil, false
	}
	out, err := schema.Convert(&pb.Attribute{Name: name, Type: t}, v)
	if err != nil {
		a.invalid(name, "%v", err)
		return nil, false
	}
	return out, true
}

func (a attrs) str(name string, dst *string) bool {
	v, ok := a.convert(name, pb.AttributeType_ATTRIBUTE_TYPE_STRING)
	if ok {
		*dst = v.(string)
	}
	return ok
}

func (a attrs) strings(name string, dst *[]string) bool {
	v, ok := a.convert(name, pb.AttributeType_ATTRIBUTE_TYPE_LIST_OF_STRING)
	if ok {
		*dst = v.([]string)
	}
	return ok
}

func (a attrs) number(name string, dst *float64) bool {
	v, ok := a.convert(name, pb.AttributeType_ATTRIBUTE_TYPE_NUMBER)
	if ok {
		*dst = v.(float64)
	}
	return ok
}

// vcpus reads a positive number of vCPUs into milli-vCPUs.
func (a attrs) vcpus(name string, dst *int64) bool {
	var f float64
	if !a.number(name, &f) {
		return false
	}
	// Decimal fractions such as 0.3 are not exact in binary; a millionth of
	// a milli-vCPU of slack accepts them without accepting 0.0005.
	milli := math.Round(f * 1000)
	switch {
	case f <= 0:
		a.invalid(name, "must be > 0, got %g", f)
	case math.Abs(f*1000-milli) > 1e-6:
		a.invalid(name, "must be a whole number of milli-vCPUs (at most three decimals), got %g", f)
	case milli > math.MaxInt32:
		a.invalid(name, "%g vCPUs is beyond any machine", f)
	default:
		*dst = int64(milli)
		return true
	}
	return false
}

// bytes reads a positive size.
func (a attrs) bytes(name string, dst *uint64) bool {
	v, ok := a.convert(name, pb.AttributeType_ATTRIBUTE_TYPE_BYTES)
	if !ok {
		return false
	}
	if v.(uint64) == 0 {
		a.invalid(name, "must be > 0")
		return false
	}
	*dst = v.(uint64)
	return true
}

// duration reads a positive duration.
func (a attrs) duration(name string, dst *time.Duration) bool {
	v, ok := a.convert(name, pb.AttributeType_ATTRIBUTE_TYPE_DURATION)
	if !ok {
		return false
	}
	d := time.Duration(v.(int64))
	if d <= 0 {
		a.invalid(name, "must be > 0, got %s", d)
		return false
	}
	*dst = d
	return true
}
