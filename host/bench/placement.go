package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/vertigo-autoscaler/vertigo/host/model"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	placementBinary = "vertigo-placement"
	askBatch        = 100
	applyBatch      = 100
	// warmupVMs are placed, grown and removed before timing; they are one
	// unit each so that they fit even on a single node.
	warmupVMs     = 200
	nodeWatermark = 0.9
)

var (
	nodeCapacity = model.Size{VCPUMilli: 64000, MemoryBytes: 256 * gib}
	vmUnit       = model.Size{VCPUMilli: 250, MemoryBytes: 256 * mib}
)

// placedVM is a VM the benchmark placed, at the size it was placed with.
type placedVM struct {
	name, node string
	size       model.Size
}

func placement(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("placement", flag.ContinueOnError)
	nodes := fs.Int("nodes", 1000, "nodes of 64 vCPU/256GiB")
	vms := fs.Int("vms", 20000, "VMs placed, one Place call each")
	asks := fs.Int("asks", 20000, "growth asks, batched and then one per call")
	bin := fs.String("bin", "bin", "directory holding "+placementBinary)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "nodes", "vms", "asks"); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "placement: %s, %d nodes of %s (watermark %g), %d VMs of 0.5..4 vCPU/1..16GiB in units of %s\n",
		filepath.Join(*bin, placementBinary), *nodes, nodeCapacity, nodeWatermark, *vms, vmUnit)
	p, err := launchConfigured(ctx, *bin, placementBinary, pb.Kind_KIND_PLACEMENT, stderr)
	if err != nil {
		return err
	}
	defer p.Kill()
	c := p.Placement
	if _, err := c.Reset(ctx, &pb.ResetRequest{}); err != nil {
		return fmt.Errorf("Reset: %w", err)
	}
	if _, err := apply(ctx, c, nodeEvents(*nodes), applyBatch); err != nil {
		return fmt.Errorf("adding the nodes: %w", err)
	}
	if err := warmUp(ctx, c); err != nil {
		return fmt.Errorf("warming up: %w", err)
	}

	placed, placeTook, err := placeAll(ctx, c, "pg", vmSizes(*vms))
	if err != nil {
		return err
	}
	if len(placed) == 0 {
		return fmt.Errorf("no VM fits on %d nodes: raise -nodes", *nodes)
	}
	row(stdout, "Place, one VM per call", "%d in %v = %.0f/s (%d fit nowhere)",
		*vms, round3(placeTook), perSecond(*vms, placeTook), *vms-len(placed))

	// The batched and the one-per-call runs make the same asks from the
	// same state: the shrinks between them return every VM to the size it
	// was placed with.
	growth := growthAsks(placed, *asks)
	batchedTook, err := grow(ctx, c, growth, askBatch)
	if err != nil {
		return err
	}
	row(stdout, fmt.Sprintf("Grow, %d asks per call", askBatch), "%d asks in %v = %.0f asks/s",
		len(growth), round3(batchedTook), perSecond(len(growth), batchedTook))
	shrinks := shrinkEvents(placed, growth)
	applyTook, err := apply(ctx, c, shrinks, applyBatch)
	if err != nil {
		return fmt.Errorf("shrinking: %w", err)
	}
	row(stdout, fmt.Sprintf("Apply shrinks, %d per call", applyBatch), "%d events in %v = %.0f/s",
		len(shrinks), round3(applyTook), perSecond(len(shrinks), applyTook))
	singleTook, err := grow(ctx, c, growth, 1)
	if err != nil {
		return err
	}
	row(stdout, "baseline, Grow one ask per call", "%d asks in %v = %.0f asks/s (batching is %.1fx faster)",
		len(growth), round3(singleTook), perSecond(len(growth), singleTook), float64(singleTook)/float64(batchedTook))

	start := time.Now()
	plan, err := c.PlanMigrations(ctx, &pb.PlanMigrationsRequest{})
	planTook := time.Since(start)
	if err != nil {
		return fmt.Errorf("PlanMigrations: %w", err)
	}
	row(stdout, "PlanMigrations", "%v, %d migrations planned", round3(planTook), len(plan.GetMigrations()))

	snap, err := c.Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		return fmt.Errorf("Snapshot: %w", err)
	}
	violations := overcommits(snap)
	row(stdout, "Snapshot, checked", "%d nodes, %d VMs, %d overcommits", len(snap.GetNodes()), len(snap.GetVms()), len(violations))
	for _, v := range violations[:min(len(violations), 10)] {
		fmt.Fprintf(stdout, "    %s\n", v)
	}

	var f figures
	f.add("place_per_s", perSecond(*vms, placeTook), 0)
	f.add("grow_batched_per_s", perSecond(len(growth), batchedTook), 0)
	f.add("grow_single_per_s", perSecond(len(growth), singleTook), 0)
	f.add("apply_per_s", perSecond(len(shrinks), applyTook), 0)
	f.add("plan_ms", float64(planTook)/float64(time.Millisecond), 2)
	f.addInt("nodes", *nodes)
	f.addInt("vms", *vms)
	f.addInt("overcommits", len(violations))
	fmt.Fprintln(stdout, f)
	if len(violations) > 0 {
		return fmt.Errorf("placement overcommitted: %d violations, first: %s", len(violations), violations[0])
	}
	return nil
}

func nodeEvents(n int) []*pb.PlacementEvent {
	events := make([]*pb.PlacementEvent, n)
	for i := range events {
		events[i] = &pb.PlacementEvent{Event: &pb.PlacementEvent_NodeUpsert{NodeUpsert: &pb.NodeSpec{
			Name: fmt.Sprintf("node-%04d", i), Capacity: nodeCapacity.Proto(), Watermark: nodeWatermark,
		}}}
	}
	return events
}

// vmSizes draws n sizes of 0.5..4 vCPU and 1..16GiB in whole units from a
// seeded generator, so every run places the same fleet.
func vmSizes(n int) []model.Size {
	rng := rand.New(rand.NewPCG(2, uint64(n)))
	sizes := make([]model.Size, n)
	for i := range sizes {
		sizes[i] = model.Size{
			VCPUMilli:   500 + vmUnit.VCPUMilli*rng.Int64N(15),
			MemoryBytes: gib + vmUnit.MemoryBytes*rng.Uint64N(61),
		}
	}
	return sizes
}

// placeAll places one VM per call, named prefix-00000 on, and returns those
// that found a node.
func placeAll(ctx context.Context, c pb.PlacementClient, prefix string, sizes []model.Size) ([]placedVM, time.Duration, error) {
	placed := make([]placedVM, 0, len(sizes))
	start := time.Now()
	for i, size := range sizes {
		name := fmt.Sprintf("%s-%05d", prefix, i)
		resp, err := c.Place(ctx, &pb.PlaceRequest{Vm: name, Size: size.Proto(), Unit: vmUnit.Proto()})
		if err != nil {
			return nil, 0, fmt.Errorf("Place %s: %w", name, err)
		}
		if resp.GetNode() != "" {
			placed = append(placed, placedVM{name: name, node: resp.GetNode(), size: size})
		}
	}
	return placed, time.Since(start), nil
}

// growthAsks picks n asks of random placed VMs, each 1..4 units more in
// both dimensions than that VM's previous ask. Wants are full sizes, so the
// asks stay valid whatever was granted before them.
func growthAsks(placed []placedVM, n int) []*pb.GrowthAsk {
	rng := rand.New(rand.NewPCG(3, uint64(n)))
	want := make(map[string]model.Size, len(placed))
	asks := make([]*pb.GrowthAsk, n)
	for i := range asks {
		vm := placed[rng.IntN(len(placed))]
		w, ok := want[vm.name]
		if !ok {
			w = vm.size
		}
		k := 1 + rng.Int64N(4)
		w.VCPUMilli += k * vmUnit.VCPUMilli
		w.MemoryBytes += uint64(k) * vmUnit.MemoryBytes
		want[vm.name] = w
		asks[i] = &pb.GrowthAsk{Vm: vm.name, Want: w.Proto()}
	}
	return asks
}

// grow sends asks perCall at a time and returns how long that took.
func grow(ctx context.Context, c pb.PlacementClient, asks []*pb.GrowthAsk, perCall int) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < len(asks); i += perCall {
		batch := asks[i:min(i+perCall, len(asks))]
		resp, err := c.Grow(ctx, &pb.GrowRequest{Asks: batch})
		if err != nil {
			return 0, fmt.Errorf("Grow of asks[%d:%d]: %w", i, i+len(batch), err)
		}
		if len(resp.GetGrants()) != len(batch) {
			return 0, fmt.Errorf("Grow of asks[%d:%d]: %d grants for %d asks", i, i+len(batch), len(resp.GetGrants()), len(batch))
		}
	}
	return time.Since(start), nil
}

// shrinkEvents returns every VM that growth asked for to the size it was
// placed with, on its node.
func shrinkEvents(placed []placedVM, growth []*pb.GrowthAsk) []*pb.PlacementEvent {
	asked := make(map[string]bool, len(growth))
	for _, a := range growth {
		asked[a.GetVm()] = true
	}
	var events []*pb.PlacementEvent
	for _, vm := range placed {
		if asked[vm.name] {
			events = append(events, &pb.PlacementEvent{Event: &pb.PlacementEvent_VmUpsert{VmUpsert: &pb.VMPlacement{
				Vm: vm.name, Node: vm.node, Reserved: vm.size.Proto(), Unit: vmUnit.Proto(),
			}}})
		}
	}
	return events
}

// apply sends events perCall at a time; a refused event is an error, as
// every event the benchmark sends is valid.
func apply(ctx context.Context, c pb.PlacementClient, events []*pb.PlacementEvent, perCall int) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < len(events); i += perCall {
		batch := events[i:min(i+perCall, len(events))]
		resp, err := c.Apply(ctx, &pb.ApplyRequest{Events: batch})
		if err != nil {
			return 0, fmt.Errorf("Apply of events[%d:%d]: %w", i, i+len(batch), err)
		}
		if errs := resp.GetErrors(); len(errs) > 0 {
			return 0, fmt.Errorf("Apply refused %d of events[%d:%d], first events[%d]: %s",
				len(errs), i, i+len(batch), i+int(errs[0].GetIndex()), errs[0].GetMessage())
		}
	}
	return time.Since(start), nil
}

// warmUp exercises every call the benchmark times on VMs of its own, then
// removes them, leaving only the nodes.
func warmUp(ctx context.Context, c pb.PlacementClient) error {
	sizes := make([]model.Size, warmupVMs)
	for i := range sizes {
		sizes[i] = vmUnit
	}
	placed, _, err := placeAll(ctx, c, "warmup", sizes)
	if err != nil {
		return err
	}
	if len(placed) == 0 {
		return fmt.Errorf("not even a VM of %s fits on the nodes", vmUnit)
	}
	asks := growthAsks(placed, warmupVMs)
	for _, perCall := range []int{askBatch, 1} {
		if _, err := grow(ctx, c, asks, perCall); err != nil {
			return err
		}
	}
	removals := make([]*pb.PlacementEvent, len(placed))
	for i, vm := range placed {
		removals[i] = &pb.PlacementEvent{Event: &pb.PlacementEvent_VmRemove{VmRemove: vm.name}}
	}
	_, err = apply(ctx, c, removals, applyBatch)
	return err
}
