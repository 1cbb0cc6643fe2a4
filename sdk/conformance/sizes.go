package conformance

import (
	"fmt"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

func size(vcpuMilli int64, memory uint64) *pb.Size {
	return &pb.Size{VcpuMilli: vcpuMilli, MemoryBytes: memory}
}

func add(a, b *pb.Size) *pb.Size {
	return size(a.GetVcpuMilli()+b.GetVcpuMilli(), a.GetMemoryBytes()+b.GetMemoryBytes())
}

// sub is a - b; callers only take away what was added before.
func sub(a, b *pb.Size) *pb.Size {
	return size(a.GetVcpuMilli()-b.GetVcpuMilli(), a.GetMemoryBytes()-b.GetMemoryBytes())
}

// fits reports whether a is at most b in both dimensions.
func fits(a, b *pb.Size) bool {
	return a.GetVcpuMilli() <= b.GetVcpuMilli() && a.GetMemoryBytes() <= b.GetMemoryBytes()
}

func sameSize(a, b *pb.Size) bool {
	return a.GetVcpuMilli() == b.GetVcpuMilli() && a.GetMemoryBytes() == b.GetMemoryBytes()
}

// underWatermark reports whether reserved is at most watermark x capacity
// in both dimensions.
func underWatermark(reserved, capacity *pb.Size, watermark float64) bool {
	return float64(reserved.GetVcpuMilli()) <= watermark*float64(capacity.GetVcpuMilli()) &&
		float64(reserved.GetMemoryBytes()) <= watermark*float64(capacity.GetMemoryBytes())
}

func formatSize(s *pb.Size) string {
	return fmt.Sprintf("%dm vCPU/%s", s.GetVcpuMilli(), formatBytes(s.GetMemoryBytes()))
}

func formatBytes(b uint64) string {
	switch {
	case b != 0 && b%gib == 0:
		return fmt.Sprintf("%dGiB", b/gib)
	case b != 0 && b%mib == 0:
		return fmt.Sprintf("%dMiB", b/mib)
	}
	return fmt.Sprintf("%dB", b)
}
