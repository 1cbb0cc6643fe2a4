package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vertigo-autoscaler/vertigo/host/echoprobe"
	"github.com/vertigo-autoscaler/vertigo/host/model"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

const (
	bridgeBinary = "vertigo-bridge"
	netVMName    = "netbench"
	// echoPort is the guest agent's TCP echo service.
	echoPort = "7"
	// probeEvery paces both the TCP stream and the pings: the resolution of
	// the stall and of the loss figures.
	probeEvery = 10 * time.Millisecond
	// steady is how long traffic must flow after a migration before its
	// figures are taken; a stream still stalled after recoverWithin is
	// reported as such, not waited for.
	steady        = time.Second
	recoverWithin = 30 * time.Second
)

// netRun is one migration as a client saw it.
type netRun struct {
	announce     bool
	total        time.Duration
	downtime     time.Duration
	stall        time.Duration
	lost, probes int
	// unrecovered: the stream was still stalled recoverWithin after the
	// migration; stall is then a lower bound.
	unrecovered bool
}

// migrateNet measures what a client in its own namespace sees while a VM
// migrates between two nodes joined by the overlay: the longest TCP stall
// and the pings lost, with the announcement after the switch-over and
// without it, alternating in the same run. It drives the plugins directly,
// as the host does, because the host always announces.
func migrateNet(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("migrate-net", flag.ContinueOnError)
	runs := fs.Int("runs", 3, "migrations with the announcement, and as many without, alternating")
	bin := fs.String("bin", "bin", "directory holding the plugins, "+qemuBinary+" and "+bridgeBinary+" included")
	guest := fs.String("guest", "build/guest", "directory holding the guest image (make guest)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := positive(fs, "runs"); err != nil {
		return err
	}
	s, err := newGuestSetup(*bin, *guest)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vbn")
	if err != nil {
		return err
	}
	prefix := fmt.Sprintf("vbn%d-", os.Getpid()%10000)
	runDir := filepath.Join(dir, "qemu")
	defer func() {
		err = errors.Join(err, stopGuests(s, runDir, stderr), deleteNamespaces(prefix), os.RemoveAll(dir))
	}()

	network, err := launchBridge(ctx, s.bin, filepath.Join(dir, "net"), prefix, stderr)
	if err != nil {
		return err
	}
	defer network.Kill()
	for _, n := range benchNodes {
		if _, err := network.Network.SetupNode(ctx, &pb.SetupNodeRequest{Node: n, Peers: others(n)}); err != nil {
			return fmt.Errorf("setting up node %s: %w", n, err)
		}
	}
	hv, err := launchQEMU(ctx, s, runDir, stderr)
	if err != nil {
		return err
	}
	defer hv.Kill()
	port, err := network.Network.AttachVM(ctx, &pb.AttachVMRequest{Vm: netVMName, Node: benchNodes[0]})
	if err != nil {
		return fmt.Errorf("attaching the VM: %w", err)
	}
	a := port.GetAttachment()
	size := model.Size{VCPUMilli: 1000, MemoryBytes: 512 * mib}
	spec := &pb.VMSpec{Name: netVMName, Node: benchNodes[0], Size: size.Proto(),
		Bounds: model.Bounds{Min: size, Max: size, Unit: model.Size{VCPUMilli: 1000, MemoryBytes: 128 * mib}}.Proto(),
		Tap:    a.GetTap(), Mac: a.GetMac(), Netns: a.GetNetns(), IpCidr: a.GetIpCidr(), Gateway: a.GetGateway()}
	bootCtx, cancel := context.WithTimeout(ctx, guestBoot)
	_, err = hv.Hypervisor.StartVM(bootCtx, &pb.StartVMRequest{Spec: spec})
	cancel()
	if err != nil {
		return fmt.Errorf("starting the VM: %w", err)
	}
	ip, _, err := net.ParseCIDR(a.GetIpCidr())
	if err != nil {
		return fmt.Errorf("the network plugin's address %q: %w", a.GetIpCidr(), err)
	}
	client := prefix + "client"
	fmt.Fprintf(stdout, "migrate-net: a guest (1 vCPU, 512MiB) at %s migrates between two nodes joined by VXLAN; a client in namespace %s "+
		"streams TCP through its echo service and pings it every %v; stall: the longest time no echoed byte arrived while bytes were outstanding; "+
		"lost: pings never answered; with and without the announcement after the switch-over, alternating\n", ip, client, probeEvery)

	var got []netRun
	for i := range 2 * *runs {
		from, to := benchNodes[i%2], benchNodes[(i+1)%2]
		r, err := migrateProbed(ctx, network.Client, hv.Client, client, ip, from, to, i%2 == 0)
		if err != nil {
			return fmt.Errorf("migration %d, %s to %s: %w", i+1, from, to, err)
		}
		stall := round3(r.stall).String()
		if r.unrecovered {
			stall = "over " + stall + " (never recovered)"
		}
		row(stdout, fmt.Sprintf("run %d %s -> %s, announce=%t", i+1, from, to, r.announce),
			"stall %s, lost %d of %d pings, migration %v (downtime %v)", stall, r.lost, r.probes, round3(r.total), round3(r.downtime))
		got = append(got, r)
	}

	var f figures
	for _, announce := range []bool{true, false} {
		var these []netRun
		for _, r := range got {
			if r.announce == announce {
				these = append(these, r)
			}
		}
		name := map[bool]string{true: "announce", false: "no_announce"}[announce]
		stall := p50(these, func(r netRun) time.Duration { return r.stall })
		var worst time.Duration
		lost, probes, unrecovered := 0, 0, 0
		for _, r := range these {
			worst, lost, probes = max(worst, r.stall), lost+r.lost, probes+r.probes
			if r.unrecovered {
				unrecovered++
			}
		}
		row(stdout, strings.ReplaceAll(name, "_", " "), "stall p50 %v (worst %v), lost %d of %d pings in all, %d of %d runs never recovered",
			round3(stall), round3(worst), lost, probes, unrecovered, len(these))
		f.add(name+"_stall_ms", millis(stall), 0)
		f.add(name+"_worst_stall_ms", millis(worst), 0)
		f.addInt(name+"_lost", lost)
		f.addInt(name+"_pings", probes)
		f.addInt(name+"_unrecovered", unrecovered)
	}
	f.addInt("runs", *runs)
	fmt.Fprintln(stdout, f)
	return nil
}

// migrateProbed migrates the VM from -> to as the host does (port first,
// then the hypervisor, then the losing port removed and, if announce, the
// network told) while a TCP stream and pings run, and returns what they saw.
func migrateProbed(ctx context.Context, network, hv *sdk.Client, client string, ip net.IP, from, to string, announce bool) (netRun, error) {
	r := netRun{announce: announce}
	conn, err := echoprobe.Dial(ctx, client, "tcp", net.JoinHostPort(ip.String(), echoPort))
	if err != nil {
		return r, fmt.Errorf("connecting to the guest's echo service: %w", err)
	}
	stream := echoprobe.NewStream(conn, 256, probeEvery)
	pings, err := echoprobe.Ping(client, ip, probeEvery)
	if err != nil {
		stream.Stop(time.Second)
		return r, err
	}
	if err := flowing(stream, steady); err != nil {
		stream.Stop(time.Second)
		pings.Stop(time.Second)
		return r, fmt.Errorf("before migrating: %w", err)
	}

	start := time.Now()
	r.downtime, err = migrateWithPort(ctx, network, hv, from, to, announce)
	r.total = time.Since(start)
	if err != nil {
		stream.Stop(time.Second)
		pings.Stop(time.Second)
		return r, err
	}
	// Without the announcement a VM with nothing to send stays unreachable:
	// the bridges still forward its frames to the old node. That is a
	// figure (a stall of at least recoverWithin), not a failure.
	recovered := flowing(stream, steady) == nil
	if err := stream.Snapshot().Err; err != nil {
		stream.Stop(0)
		pings.Stop(time.Second)
		return r, fmt.Errorf("the client's TCP stream broke: %w", err)
	}
	drain := recoverWithin
	if !recovered {
		drain = 0
	}
	sr := stream.Stop(drain)
	pr := pings.Stop(time.Second)
	r.lost, r.probes = pr.Lost(), pr.Sent
	switch {
	case recovered && sr.Err == nil:
		r.stall = sr.LongestStall
	case !recovered && !announce:
		r.stall, r.unrecovered = max(sr.LongestStall, time.Since(start)), true
	default:
		return r, fmt.Errorf("the client's TCP stream: %v (recovered: %t)", sr.Err, recovered)
	}
	return r, nil
}

// flowing waits until the stream has echoed bytes with no gap longer than
// five probe intervals for d, or recoverWithin passed.
func flowing(s *echoprobe.Stream, d time.Duration) error {
	deadline := time.Now().Add(recoverWithin)
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	var since, arrived time.Time
	last := s.Snapshot().Received
	for now := range t.C {
		r := s.Snapshot()
		switch {
		case r.Err != nil:
			return r.Err
		case r.Received > last:
			if since.IsZero() {
				since = now
			}
			last, arrived = r.Received, now
		case !since.IsZero() && now.Sub(arrived) > 5*probeEvery:
			since = time.Time{} // stalled again
		}
		if !since.IsZero() && now.Sub(since) >= d {
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("no steady echo within %v (%d of %d bytes back)", recoverWithin, r.Received, r.Sent)
		}
	}
	return nil
}

// migrateWithPort is the host's migration of the VM with its network port.
func migrateWithPort(ctx context.Context, network, hv *sdk.Client, from, to string, announce bool) (time.Duration, error) {
	prep, err := network.Network.PrepareMigration(ctx, &pb.PrepareMigrationRequest{Vm: netVMName, TargetNode: to})
	if err != nil {
		return 0, fmt.Errorf("preparing the port on %s: %w", to, err)
	}
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	downtime, merr := runMigration(ctx, hv, &pb.MigrateRequest{
		Name: netVMName, TargetNode: to, MaxBandwidthBytesPerSecond: migrationBandwidth, DowntimeLimitNanos: int64(migrationDowntime),
		TargetTap: prep.GetAttachment().GetTap(), TargetNetns: prep.GetAttachment().GetNetns(), SkipAnnounce: !announce,
	})
	if _, err := network.Network.CompleteMigration(ctx, &pb.CompleteMigrationRequest{Vm: netVMName, SourceNode: from, TargetNode: to, Succeeded: merr == nil}); err != nil {
		return 0, errors.Join(merr, fmt.Errorf("completing the ports: %w", err))
	}
	if merr != nil || !announce {
		return downtime, merr
	}
	if _, err := network.Network.Announce(ctx, &pb.AnnounceRequest{Vm: netVMName, Node: to}); err != nil {
		return 0, fmt.Errorf("announcing: %w", err)
	}
	return downtime, nil
}

// runMigration follows a hypervisor migration to its outcome.
func runMigration(ctx context.Context, hv *sdk.Client, req *pb.MigrateRequest) (time.Duration, error) {
	stream, err := hv.Hypervisor.Migrate(ctx, req)
	if err != nil {
		return 0, err
	}
	for {
		p, err := stream.Recv()
		if err != nil {
			return 0, err
		}
		switch p.GetPhase() {
		case pb.MigrationPhase_MIGRATION_PHASE_COMPLETED:
			return time.Duration(p.GetDowntimeNanos()), nil
		case pb.MigrationPhase_MIGRATION_PHASE_FAILED, pb.MigrationPhase_MIGRATION_PHASE_CANCELLED:
			return 0, fmt.Errorf("%s: %s", p.GetPhase(), p.GetMessage())
		}
	}
}

// launchBridge starts the network plugin in namespaces mode with its state
// under stateDir and its namespaces named with prefix.
func launchBridge(ctx context.Context, bin, stateDir, prefix string, stderr io.Writer) (*sdk.Launched, error) {
	p, err := sdk.Launch(sdk.LaunchOptions{
		Path:   filepath.Join(bin, bridgeBinary),
		Logger: hclog.New(&hclog.LoggerOptions{Name: bridgeBinary, Output: stderr, Level: hclog.Error}),
	})
	if err != nil {
		return nil, err
	}
	config, err := json.Marshal(map[string]any{
		"state_dir": stateDir, "netns_prefix": prefix, "client_namespace": "client",
		"subnet": "10.79.0.0/24", "underlay_subnet": "10.252.0.0/24", "vni": 79,
	})
	if err == nil {
		var version uint32
		if _, version, err = p.Identify(ctx, bridgeBinary, pb.Kind_KIND_NETWORK); err == nil {
			err = p.Configure(ctx, config, version)
		}
	}
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("%s: %w", bridgeBinary, err)
	}
	return p, nil
}

// deleteNamespaces removes the network namespaces named with prefix: like
// VMs, they outlive the plugin that made them.
func deleteNamespaces(prefix string) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("listing network namespaces: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			if out, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("deleting namespace %s: %v: %s", f[0], err, out))
			}
		}
	}
	return errors.Join(errs...)
}

func others(node string) []string {
	var out []string
	for _, n := range benchNodes {
		if n != node {
			out = append(out, n)
		}
	}
	return out
}
