package fleet

import (
	"fmt"
	"testing"
)

// benchFleet is the host bench's fleet: 1000 nodes of 64 vCPU/256GiB and
// 20000 VMs of 2 vCPU/8GiB, 20 a node, with every tenth node above its
// watermark.
func benchFleet(b *testing.B) *Fleet {
	b.Helper()
	f := New()
	for i := range 1000 {
		if err := f.UpsertNode(NodeSpec{Name: fmt.Sprintf("node%04d", i), Capacity: sz(64, 256), Watermark: 0.9}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20000 {
		vm := VM{Name: fmt.Sprintf("vm%05d", i), Node: fmt.Sprintf("node%04d", i%1000), Reserved: sz(2, 8), Unit: sz(1, 1), DirtyBytesPerSecond: uint64(i%7) << 20}
		if i%1000%10 == 0 {
			vm.Reserved = sz(3, 12) // 20 × 12GiB = 240GiB, above 0.9 × 256GiB
		}
		if err := f.UpsertVM(vm); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

func BenchmarkGrow100(b *testing.B) {
	f := benchFleet(b)
	asks := make([]Ask, 100)
	originals := make([]VM, 100)
	for i := range asks {
		vm := f.vms[fmt.Sprintf("vm%05d", i*199+1)]
		originals[i] = *vm
		asks[i] = Ask{VM: vm.Name, Want: vm.Reserved.add(sz(1, 2))}
	}
	b.ReportAllocs()
	for b.Loop() {
		grants, err := f.Grow(asks)
		if err != nil || grants[0].Granted != asks[0].Want {
			b.Fatalf("grow: %v %+v", err, grants[0])
		}
		b.StopTimer()
		for _, vm := range originals {
			if err := f.UpsertVM(vm); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

func BenchmarkPlace1000Nodes(b *testing.B) {
	for _, strategy := range []Strategy{Spread, Pack} {
		b.Run(string(strategy), func(b *testing.B) {
			f := benchFleet(b)
			b.ReportAllocs()
			for b.Loop() {
				p, err := f.Place("new", sz(2, 8), unit, strategy)
				if err != nil || p.Node == "" {
					b.Fatalf("place: %v %+v", err, p)
				}
				b.StopTimer()
				if err := f.RemoveVM("new"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

func BenchmarkPlanMigrations1000Nodes20000VMs(b *testing.B) {
	f := benchFleet(b)
	b.ReportAllocs()
	for b.Loop() {
		if p := f.PlanMigrations(defaultPolicy); len(p.Migrations) != 100 || len(p.Shortfalls) != 0 {
			b.Fatalf("want one move off each of the 100 hot nodes, got %d moves and %d shortfalls", len(p.Migrations), len(p.Shortfalls))
		}
	}
}
