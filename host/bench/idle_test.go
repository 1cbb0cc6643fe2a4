package bench

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/config"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

func TestIdleConfigIsValidAndHoldsEveryVM(t *testing.T) {
	for _, vms := range []int{0, 1, vmsPerNode(), vmsPerNode() + 1, 100} {
		src := idleConfig("/opt/vertigo ${odd}/bin", "/tmp/st\"ate", "127.0.0.1:40123", vms)
		cfg, diags := config.Parse([]byte(src), "idle.hcl")
		require.False(t, diags.HasErrors(), "vms=%d: %s\n%s", vms, config.Format(diags), src)

		require.Equal(t, "/tmp/st\"ate", cfg.StateDir)
		require.Equal(t, "127.0.0.1:40123", cfg.API.Address)
		require.Equal(t, loopInterval, cfg.Loop.Interval)
		require.Equal(t, "/opt/vertigo ${odd}/bin/vertigo-scaler", cfg.Plugin(pb.Kind_KIND_SCALER).Path)
		require.Equal(t, "/opt/vertigo ${odd}/bin/vertigo-placement", cfg.Plugin(pb.Kind_KIND_PLACEMENT).Path)
		require.Len(t, cfg.VMs, vms)
		for _, vm := range cfg.VMs {
			require.Equal(t, defaultBounds, vm.Bounds)
			require.Empty(t, vm.Node, "placement chooses")
		}

		// Every VM at its minimum fits under the nodes' watermarks.
		var room model.Size
		for _, n := range cfg.Nodes {
			room.VCPUMilli += int64(n.Watermark * float64(n.Capacity.VCPUMilli))
			room.MemoryBytes += uint64(n.Watermark * float64(n.Capacity.MemoryBytes))
		}
		need := model.Size{VCPUMilli: int64(vms) * defaultBounds.Min.VCPUMilli, MemoryBytes: uint64(vms) * defaultBounds.Min.MemoryBytes}
		require.True(t, need.Fits(room), "vms=%d need %s, nodes hold %s", vms, need, room)
		require.Len(t, cfg.Nodes, nodesFor(vms))
	}
}

func TestVMsPerNodeFillsTheTighterDimension(t *testing.T) {
	n := vmsPerNode()
	vm := defaultBounds.Min
	fits := func(k int) bool {
		return float64(int64(k)*vm.VCPUMilli) <= idleWatermark*float64(idleNode.VCPUMilli) &&
			float64(uint64(k)*vm.MemoryBytes) <= idleWatermark*float64(idleNode.MemoryBytes)
	}
	require.True(t, fits(n))
	require.False(t, fits(n+1))
}
