package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/model"
)

func TestDecideRequestIsAMinuteOfSamplesWithinBounds(t *testing.T) {
	req := decideRequest(batchVMs)
	require.Equal(t, benchEpoch.UnixNano(), req.GetNowUnixNano())
	require.Len(t, req.GetVms(), batchVMs)
	names := map[string]bool{}
	for _, vm := range req.GetVms() {
		names[vm.GetVm()] = true
		current := model.SizeFrom(vm.GetCurrent())
		require.True(t, defaultBounds.Min.Fits(current) && current.Fits(defaultBounds.Max), "%s: %s", vm.GetVm(), current)
		w := vm.GetMetrics()
		require.Len(t, w.GetTUnixNano(), 12)
		require.Equal(t, benchEpoch.UnixNano(), w.GetTUnixNano()[11])
		require.Equal(t, time.Minute-5*time.Second, time.Duration(w.GetTUnixNano()[11]-w.GetTUnixNano()[0]))
		for _, col := range []int{len(w.GetLoad1()), len(w.GetLoad5()), len(w.GetCpuPressureAvg10()), len(w.GetMemoryPressureAvg10()),
			len(w.GetMemoryUsedBytes()), len(w.GetMemoryCachedBytes()), len(w.GetOnlineVcpuMilli()), len(w.GetOnlineMemoryBytes())} {
			require.Equal(t, 12, col)
		}
		for _, used := range w.GetMemoryUsedBytes() {
			require.Less(t, used, current.MemoryBytes)
		}
	}
	require.Len(t, names, batchVMs, "VM names are distinct")
	require.Equal(t, decideRequest(1).GetVms()[0].GetMetrics().GetLoad1(), decideRequest(1).GetVms()[0].GetMetrics().GetLoad1(),
		"every run sends the same request")
}

func TestVMSizesAreWholeUnitsInRange(t *testing.T) {
	for _, s := range vmSizes(2000) {
		require.True(t, s.VCPUMilli >= 500 && s.VCPUMilli <= 4000 && s.VCPUMilli%vmUnit.VCPUMilli == 0, "%s", s)
		require.True(t, s.MemoryBytes >= gib && s.MemoryBytes <= 16*gib && s.MemoryBytes%vmUnit.MemoryBytes == 0, "%s", s)
	}
	require.Equal(t, vmSizes(50), vmSizes(50), "seeded")
}

func TestGrowthAsksGrowEachVMByOneToFourUnits(t *testing.T) {
	placed := []placedVM{
		{name: "a", node: "n1", size: model.Size{VCPUMilli: 500, MemoryBytes: gib}},
		{name: "b", node: "n2", size: model.Size{VCPUMilli: 1000, MemoryBytes: 2 * gib}},
	}
	asks := growthAsks(placed, 300)
	require.Len(t, asks, 300)
	last := map[string]model.Size{"a": placed[0].size, "b": placed[1].size}
	for i, a := range asks {
		prev, ok := last[a.GetVm()]
		require.True(t, ok, "asks[%d] names an unplaced VM %q", i, a.GetVm())
		want := model.SizeFrom(a.GetWant())
		k := (want.VCPUMilli - prev.VCPUMilli) / vmUnit.VCPUMilli
		require.True(t, k >= 1 && k <= 4, "asks[%d]: %s after %s", i, want, prev)
		require.Equal(t, model.Size{VCPUMilli: prev.VCPUMilli + k*vmUnit.VCPUMilli, MemoryBytes: prev.MemoryBytes + uint64(k)*vmUnit.MemoryBytes}, want)
		last[a.GetVm()] = want
	}

	shrinks := shrinkEvents(placed, asks[:1])
	require.Len(t, shrinks, 1)
	back := shrinks[0].GetVmUpsert()
	require.Equal(t, asks[0].GetVm(), back.GetVm())
	for _, p := range placed {
		if p.name == back.GetVm() {
			require.Equal(t, p.node, back.GetNode())
			require.Equal(t, p.size, model.SizeFrom(back.GetReserved()))
		}
	}
}
