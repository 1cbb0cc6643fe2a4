// Package policy is the scaler's decision core: plain data in, a goal size
// out. It does no I/O and reads no clock (time arrives in Input.Now), so the
// same inputs always give the same decision and a day of a fleet replays in
// seconds.
package policy

import "time"

// Size is a VM's compute size; vCPUs are in thousandths.
type Size struct {
	VCPUMilli   int64
	MemoryBytes uint64
}

// Bounds limit a goal to [Min, Max], in multiples of Unit (Max itself is
// allowed when it is not a multiple).
type Bounds struct {
	Min, Max, Unit Size
}

// Window is a columnar window of one VM's samples, oldest first. A column
// the source cannot measure is empty; every other column has len(T) values.
type Window struct {
	T     []time.Time
	Load1 []float64
	// PSI "some" avg10, in percent (0..100).
	CPUPressure    []float64
	MemoryPressure []float64
	MemoryUsed     []uint64
	// What only the database knows (empty without one): client connections
	// running a statement, and the bytes of shared buffers and page cache it
	// touched lately.
	DBActiveConnections []uint32
	DBWorkingSet        []uint64
}

// CacheWindow is the working set a cache touched within the last Seconds.
type CacheWindow struct {
	Seconds uint32
	Bytes   uint64
}

// EventType is the kind of a guest event the policy acts on.
type EventType int

const (
	// EventMemoryPressure: the guest's memory crossed its threshold.
	EventMemoryPressure EventType = iota + 1
	// EventCPUPressure: the guest saw CPU stalls worth an upscale.
	EventCPUPressure
)

// Event is a pressure event the guest raised.
type Event struct {
	Type EventType
	At   time.Time
	// MemoryUsed is what the guest measured when it raised the event (0 if
	// unknown).
	MemoryUsed uint64
}

// Input is everything one decision for one VM depends on.
type Input struct {
	Now     time.Time
	Current Size
	Bounds  Bounds
	Metrics Window
	// Cache holds working-set estimates by window length, shortest first;
	// empty when the VM reports none.
	Cache  []CacheWindow
	Events []Event
	// State is what the previous decision returned for this VM.
	State State
	// Refusals counts consecutive downscales refused since the last
	// successful one; LastRefusal is when the latest happened.
	Refusals    uint32
	LastRefusal time.Time
	// Brief asks for the goal without its reason (Output.Reason stays
	// empty): a trace replay keeps no reasons.
	Brief bool
}

// Output is one decision.
type Output struct {
	Goal   Size
	Reason string
	State  State
	// ForceDownscale tells the host the guest may not veto this downscale.
	ForceDownscale bool
}
