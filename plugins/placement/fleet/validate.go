package fleet

import (
	"cmp"
	"fmt"
	"math"
)

// InvalidError is malformed input, as opposed to a well-formed request the
// policy refuses. Field is the path of the offending value relative to what
// was validated (empty when it is that value itself), in the wire's names.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// In places the error under parent, so that a caller validating a larger
// request can name the field from its root.
func (e *InvalidError) In(parent string) *InvalidError {
	field := parent
	if e.Field != "" {
		field += "." + e.Field
	}
	return &InvalidError{Field: field, Message: e.Message}
}

func invalid(field, message string) *InvalidError {
	return &InvalidError{Field: field, Message: message}
}

// The validators return the concrete type, so that callers test it against
// nil before it becomes an error (a nil *InvalidError in an error is not
// nil), and so that cmp.Or picks the first failure.

func (s NodeSpec) validate() *InvalidError {
	return cmp.Or(requireName("name", s.Name), requirePositive("capacity", s.Capacity), requireWatermark("watermark", s.Watermark))
}

func (v VM) validate() *InvalidError {
	return cmp.Or(requireName("vm", v.Name), requireName("node", v.Node), requireSize("reserved", v.Reserved), requirePositive("unit", v.Unit))
}

func (a Ask) validate() *InvalidError {
	return cmp.Or(requireName("vm", a.VM), requireSize("want", a.Want))
}

func requireName(field, name string) *InvalidError {
	if name == "" {
		return invalid(field, "must not be empty")
	}
	return nil
}

// requireSize refuses a negative vCPU count (memory is unsigned).
func requireSize(field string, s Size) *InvalidError {
	if s.VCPUMilli < 0 {
		return invalid(field+".vcpu_milli", "must be >= 0")
	}
	return nil
}

// requirePositive is for units and capacities: a zero would divide by zero
// or make a node that can hold nothing.
func requirePositive(field string, s Size) *InvalidError {
	if s.VCPUMilli <= 0 {
		return invalid(field+".vcpu_milli", "must be > 0")
	}
	if s.MemoryBytes == 0 {
		return invalid(field+".memory_bytes", "must be > 0")
	}
	return nil
}

func requireWatermark(field string, w float64) *InvalidError {
	if math.IsNaN(w) || w <= 0 || w > 1 {
		return invalid(field, fmt.Sprintf("must be in (0, 1], got %g", w))
	}
	return nil
}
