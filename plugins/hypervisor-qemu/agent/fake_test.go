package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A /proc/meminfo of a small guest (trimmed).
const meminfoFixture = `MemTotal:         401332 kB
MemFree:          362940 kB
MemAvailable:     369072 kB
Buffers:               0 kB
Cached:             4924 kB
SwapCached:            0 kB
Active:             1600 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
DirectMap4k:       18300 kB
`

const pressureFixture = `some avg10=1.53 avg60=0.87 avg300=0.27 total=11260587
full avg10=0.20 avg60=0.10 avg300=0.00 total=426712
`

// fakeGuest is a proc and sys tree in a temp dir, shaped like a guest's.
type fakeGuest struct {
	t   *testing.T
	sys system
}

// newFakeGuest makes a guest with the CPUs possible (cpu0..possible-1),
// present ones with their online state, and meminfo/loadavg/PSI files.
func newFakeGuest(t *testing.T, possible int, online map[int]bool) *fakeGuest {
	root := t.TempDir()
	g := &fakeGuest{t: t, sys: system{proc: filepath.Join(root, "proc"), sys: filepath.Join(root, "sys")}}
	g.write(g.sys.proc, "meminfo", meminfoFixture)
	g.write(g.sys.proc, "loadavg", "0.52 0.58 0.59 2/345 12345\n")
	g.write(g.sys.proc, "pressure/cpu", pressureFixture)
	g.write(g.sys.proc, "pressure/memory", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
	g.write(g.sys.sys, "devices/system/cpu/possible", fmt.Sprintf("0-%d\n", possible-1))
	g.setCPUs(online)
	return g
}

func (g *fakeGuest) write(root, rel, content string) {
	p := filepath.Join(root, rel)
	require.NoError(g.t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(g.t, os.WriteFile(p, []byte(content), 0o644))
}

func (g *fakeGuest) read(root, rel string) string {
	b, err := os.ReadFile(filepath.Join(root, rel))
	require.NoError(g.t, err)
	return strings.TrimSpace(string(b))
}

// setCPUs makes the given CPUs present, as a hotplug does; cpu0 gets no
// online file, as on x86.
func (g *fakeGuest) setCPUs(online map[int]bool) {
	var present []string
	for c := 0; c < 64; c++ {
		on, ok := online[c]
		if !ok {
			continue
		}
		present = append(present, strconv.Itoa(c))
		if c == 0 {
			require.NoError(g.t, os.MkdirAll(filepath.Join(g.sys.cpuDir(0)), 0o755))
			continue
		}
		v := "0"
		if on {
			v = "1"
		}
		g.write(g.sys.sys, fmt.Sprintf("devices/system/cpu/cpu%d/online", c), v)
	}
	g.write(g.sys.sys, "devices/system/cpu/present", strings.Join(present, ","))
}

// cpuOnline reads a CPU's online file as the agent left it.
func (g *fakeGuest) cpuOnline(cpu int) bool {
	return g.read(g.sys.sys, fmt.Sprintf("devices/system/cpu/cpu%d/online", cpu)) == "1"
}

func (g *fakeGuest) memoryBlock(name, state string) {
	g.write(g.sys.sys, "devices/system/memory/"+name+"/state", state)
}

func (g *fakeGuest) memTotal(kb, availableKB uint64) {
	g.write(g.sys.proc, "meminfo", fmt.Sprintf("MemTotal: %d kB\nMemAvailable: %d kB\nCached: 100 kB\n", kb, availableKB))
}

// fixedClock is an injected clock: time moves only when the test says.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

// newTestAgent is an agent on a fake guest, its log discarded.
func newTestAgent(g *fakeGuest, floor uint64) (*agent, *fixedClock) {
	clock := &fixedClock{t: time.Unix(1_800_000_000, 0)}
	a := newAgent(g.sys, floor, "6.1.0-test", clock.now, func() time.Duration { return 42 * time.Second }, log.New(io.Discard, "", 0))
	return a, clock
}
