package vm

import (
	"errors"
	"fmt"
	"regexp"
)

// Size is a VM's compute size; vCPUs in thousandths.
type Size struct {
	VCPUMilli   int64  `json:"vcpu_milli"`
	MemoryBytes uint64 `json:"memory_bytes"`
}

// Bounds are the sizes a VM may take.
type Bounds struct {
	Min  Size `json:"min"`
	Max  Size `json:"max"`
	Unit Size `json:"unit"`
}

// Spec is what the host asks for.
type Spec struct {
	Name   string `json:"name"`
	Node   string `json:"node"`
	Size   Size   `json:"size"`
	Bounds Bounds `json:"bounds"`
	// The NIC: a persistent tap in network namespace NetNS ("" is the
	// plugin's own), the guest's MAC, and its address configured at boot.
	Tap     string `json:"tap,omitempty"`
	MAC     string `json:"mac,omitempty"`
	NetNS   string `json:"netns,omitempty"`
	IPCIDR  string `json:"ip_cidr,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// Image names a guest image under the images directory; "" is the
	// default image.
	Image string `json:"image,omitempty"`
}

// namePattern keeps names usable as directory, QEMU -name and cgroup names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// ErrInvalid marks a request the caller must fix.
var ErrInvalid = errors.New("invalid argument")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateName checks a VM or node name.
func ValidateName(field, name string) error {
	if !namePattern.MatchString(name) {
		return invalid("%s: %q must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", field, name)
	}
	return nil
}

// Validate checks a spec, naming the first field at fault.
func (s Spec) Validate() error {
	if err := ValidateName("spec.name", s.Name); err != nil {
		return err
	}
	if err := ValidateName("spec.node", s.Node); err != nil {
		return err
	}
	b := s.Bounds
	switch {
	case b.Min.VCPUMilli <= 0:
		return invalid("spec.bounds.min.vcpu_milli: must be > 0, got %d", b.Min.VCPUMilli)
	case b.Min.MemoryBytes == 0:
		return invalid("spec.bounds.min.memory_bytes: must be > 0")
	case b.Max.VCPUMilli < b.Min.VCPUMilli:
		return invalid("spec.bounds.max.vcpu_milli: %d is below min %d", b.Max.VCPUMilli, b.Min.VCPUMilli)
	case b.Max.MemoryBytes < b.Min.MemoryBytes:
		return invalid("spec.bounds.max.memory_bytes: %d is below min %d", b.Max.MemoryBytes, b.Min.MemoryBytes)
	case b.Max.VCPUMilli > maxVCPUs*1000:
		return invalid("spec.bounds.max.vcpu_milli: %d is more than the %d vCPUs a q35 machine takes here", b.Max.VCPUMilli, maxVCPUs)
	}
	if err := s.validateNIC(); err != nil {
		return err
	}
	if s.Image != "" {
		if err := ValidateName("spec.image", s.Image); err != nil {
			return err
		}
	}
	return s.Bounds.check("spec.size", s.Size)
}

// check says whether size lies within the bounds.
func (b Bounds) check(field string, size Size) error {
	if size.VCPUMilli < b.Min.VCPUMilli || size.VCPUMilli > b.Max.VCPUMilli {
		return invalid("%s.vcpu_milli: %d is outside the bounds %d..%d", field, size.VCPUMilli, b.Min.VCPUMilli, b.Max.VCPUMilli)
	}
	if size.MemoryBytes < b.Min.MemoryBytes || size.MemoryBytes > b.Max.MemoryBytes {
		return invalid("%s.memory_bytes: %d is outside the bounds %d..%d", field, size.MemoryBytes, b.Min.MemoryBytes, b.Max.MemoryBytes)
	}
	return nil
}
