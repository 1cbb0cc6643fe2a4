package policy_test

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/scaler/policy"
)

// series is one VM's history: demand[i] is the CPU (cores) the workload
// wanted over (t[i-1], t[i]]; load1[i] and used[i] are what the guest
// reported at t[i].
type series struct {
	t      []time.Time
	demand []float64
	load1  []float64
	used   []uint64
}

// tally is what a replay measured.
type tally struct {
	resizes   int
	under     time.Duration // time the demand exceeded the vCPUs in force
	vcpuHours float64
	gibHours  float64
}

func (a *tally) add(b tally) {
	a.resizes += b.resizes
	a.under += b.under
	a.vcpuHours += b.vcpuHours
	a.gibHours += b.gibHours
}

func (a tally) String() string {
	return fmt.Sprintf("%d resizes, under-provisioned %s, %.0f vCPU-hours, %.0f GiB-hours", a.resizes, a.under.Round(time.Second), a.vcpuHours, a.gibHours)
}

// replay runs one VM through s, deciding at every sample from a window of
// the last window samples. A goal is in force from its sample to the next
// (the guest always consents), and every goal must keep the contract.
func replay(t testing.TB, cfg policy.Config, s series, window int) tally {
	b := quarterCU()
	size, state := cu(1), policy.State{}
	var tl tally
	for i := range s.t {
		if i > 0 {
			dt := s.t[i].Sub(s.t[i-1])
			if s.demand[i] > float64(size.VCPUMilli)/1000 {
				tl.under += dt
			}
			tl.vcpuHours += float64(size.VCPUMilli) / 1000 * dt.Hours()
			tl.gibHours += float64(size.MemoryBytes) / gib * dt.Hours()
		}
		lo := max(0, i-window+1)
		out := policy.Decide(cfg, policy.Input{
			Now: s.t[i], Current: size, Bounds: b, State: state,
			Metrics: policy.Window{T: s.t[lo : i+1], Load1: s.load1[lo : i+1], MemoryUsed: s.used[lo : i+1]},
		})
		requireContract(t, b, out.Goal)
		if out.Goal != size {
			tl.resizes++
		}
		size, state = out.Goal, out.State
	}
	return tl
}

// diurnal is a day of a CPU-bound OLTP database sampled every 5s: demand
// 0.3 cores at midnight to 2.7 at noon, AR(1) noise, and about one burst of
// +1.5 cores an hour lasting one to three minutes; memory 0.75-1.25GiB
// follows the same cycle. load1 is the kernel's one-minute average of the
// demand, so it lags as the real one does.
func diurnal(seed uint64) series {
	const tick = 5 * time.Second
	r := rand.New(rand.NewPCG(seed, 0x7e27160))
	decay := math.Exp(-tick.Seconds() / 60)
	var s series
	noise, load, burst := 0.0, 0.3, 0
	for i := range int(24 * time.Hour / tick) {
		at := time.Duration(i) * tick
		cycle := (1 - math.Cos(2*math.Pi*at.Hours()/24)) / 2
		noise = 0.9*noise + 0.08*r.NormFloat64()
		if burst == 0 && r.Float64() < 1.0/720 {
			burst = 12 + r.IntN(25)
		}
		d := 0.3 + 2.4*cycle + noise
		if burst > 0 {
			d += 1.5
			burst--
		}
		d = max(0, d)
		load = load*decay + d*(1-decay)
		s.t = append(s.t, t0.Add(at))
		s.demand = append(s.demand, d)
		s.load1 = append(s.load1, load)
		s.used = append(s.used, uint64((0.75+0.5*cycle)*gib+32*mib*r.NormFloat64()))
	}
	return s
}

func TestDefaultBeatsNeonOnASyntheticDay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s := diurnal(seed)
		neon := replay(t, neonConfig(), s, 12)
		def := replay(t, policy.DefaultConfig(), s, 12)
		t.Logf("seed %d, %d ticks of 5s:\n\tneon:    %s\n\tdefault: %s", seed, len(s.t), neon, def)
		require.Less(t, def.resizes, neon.resizes, "seed %d", seed)
		require.LessOrEqual(t, def.under, neon.under, "seed %d", seed)
	}
}

// bitbrainsPath is the shared trace, relative to this package.
const bitbrainsPath = "../../../../shared/traces/bitbrains_rnd.csv.gz"

// bitbrainsVMs are the first two VMs of the trace (mostly idle, like many
// databases) and three of its busiest (mean 4.0, 3.4 and 2.3 cores).
var bitbrainsVMs = []string{"1", "6", "41", "61", "386"}

// TestBitbrainsReplay replays VMs of the Bitbrains Rnd trace through both
// modes, deciding at every sample. A sample is a 5-minute average: the load
// within it peaked higher, so the under-provisioned time is a lower bound
// for both modes, and the 5-minute tick hides the reaction time the default
// mode gains at the host's 5-second one.
func TestBitbrainsReplay(t *testing.T) {
	traces, err := readBitbrains(bitbrainsPath, bitbrainsVMs)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("trace %s is absent; the replay needs the shared Bitbrains Rnd trace", bitbrainsPath)
	}
	require.NoError(t, err)
	var neonAll, defAll tally
	for _, id := range bitbrainsVMs {
		tr := traces[id]
		require.NotEmpty(t, tr.t, "vm %s is not in the trace", id)
		neon := replay(t, neonConfig(), tr, 12)
		def := replay(t, policy.DefaultConfig(), tr, 12)
		t.Logf("vm %s, %d samples:\n\tneon:    %s\n\tdefault: %s", id, len(tr.t), neon, def)
		neonAll.add(neon)
		defAll.add(def)
	}
	t.Logf("all %d VMs:\n\tneon:    %s\n\tdefault: %s", len(bitbrainsVMs), neonAll, defAll)
}

// readBitbrains reads the given VMs from the gzip CSV (vm_id, t_seconds,
// cpu_cores_used, mem_bytes_used; sorted by VM then time). A memory sample
// of 0 is a counter artefact of the trace, so the previous one stands.
func readBitbrains(path string, ids []string) (map[string]series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	out := map[string]series{}
	for _, id := range ids {
		out[id] = series{}
	}
	sc := bufio.NewScanner(gz)
	sc.Scan() // header
	start := time.Date(2013, 7, 31, 22, 2, 56, 0, time.UTC)
	for sc.Scan() {
		rec := strings.Split(sc.Text(), ",")
		s, wanted := out[rec[0]]
		if !wanted {
			continue
		}
		if len(rec) != 4 {
			return nil, errors.New("bitbrains: want 4 columns, got " + sc.Text())
		}
		secs, err1 := strconv.ParseInt(rec[1], 10, 64)
		cores, err2 := strconv.ParseFloat(rec[2], 64)
		mem, err3 := strconv.ParseUint(rec[3], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, err
		}
		if mem == 0 && len(s.used) > 0 {
			mem = s.used[len(s.used)-1]
		}
		s.t = append(s.t, start.Add(time.Duration(secs)*time.Second))
		s.demand = append(s.demand, cores)
		s.load1 = append(s.load1, cores)
		s.used = append(s.used, mem)
		out[rec[0]] = s
	}
	return out, sc.Err()
}
