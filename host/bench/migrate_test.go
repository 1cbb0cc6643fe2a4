package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// recordedArgs is a command line as the QEMU plugin records it, for an
// instance in /run/q/migrate@node-b that was a migration's destination.
var recordedArgs = []string{
	"/usr/bin/qemu-system-x86_64", "-name", "migrate", "-machine", "q35", "-m", "1073741824b",
	"-daemonize", "-pidfile", "/run/q/migrate@node-b/pid",
	"-qmp", "unix:/run/q/migrate@node-b/qmp.sock,server=on,wait=off",
	"-serial", "file:/run/q/migrate@node-b/serial.log",
	"-chardev", "socket,id=agent0,path=/run/q/migrate@node-b/agent.sock,server=on,wait=off",
	"-device", "virtserialport,chardev=agent0,name=org.vertigo.agent.0",
	"-incoming", "defer",
}

func TestRawGuestRunsTheRecordedMachineInItsOwnDirectory(t *testing.T) {
	g := rawGuest{args: recordedArgs, dir: "/run/q/migrate@node-b"}
	want := []string{
		"/usr/bin/qemu-system-x86_64", "-name", "migrate", "-machine", "q35", "-m", "1073741824b",
		"-qmp", "unix:/tmp/raw/1/qmp.sock,server=on,wait=off",
		"-serial", "file:/tmp/raw/1/serial.log",
		"-chardev", "socket,id=agent0,path=/tmp/raw/1/agent.sock,server=on,wait=off",
		"-device", "virtserialport,chardev=agent0,name=org.vertigo.agent.0",
	}
	require.Equal(t, want, g.argsIn("/tmp/raw/1", false), "a source: a child of the benchmark, not waiting for a stream")
	require.Equal(t, append(want, "-incoming", "defer"), g.argsIn("/tmp/raw/1", true))
	require.Equal(t, recordedArgs[0], g.args[0])
	require.Len(t, g.args, len(recordedArgs), "the recorded line is left as it was")
}

func TestRecordedGuestReadsTheInstancesSpec(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.json")
	require.NoError(t, os.WriteFile(spec, []byte(`{"spec": {"name": "migrate"}, "args": ["qemu", "-name", "migrate"], "created": "2026-11-27T12:00:00Z"}`), 0o600))
	g, err := recordedGuest(dir)
	require.NoError(t, err)
	require.Equal(t, rawGuest{args: []string{"qemu", "-name", "migrate"}, dir: dir}, g)

	require.NoError(t, os.WriteFile(spec, []byte(`{"spec": {"name": "migrate"}}`), 0o600))
	_, err = recordedGuest(dir)
	require.ErrorContains(t, err, spec+" records no command line")

	require.NoError(t, os.WriteFile(spec, []byte(`{"args": "qemu"}`), 0o600))
	_, err = recordedGuest(dir)
	require.ErrorContains(t, err, spec)

	_, err = recordedGuest(t.TempDir())
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestDowntimeVerdictAllowsTenPercent(t *testing.T) {
	ms := time.Millisecond
	require.Equal(t, "met (110ms against 100ms, +10%)", downtimeVerdict(110*ms, 100*ms))
	require.Equal(t, "met (40ms against 100ms, -60%)", downtimeVerdict(40*ms, 100*ms))
	require.Equal(t, "NOT met (111ms against 100ms, +11%)", downtimeVerdict(111*ms, 100*ms))
	require.Equal(t, "NOT met (3ms against 0s, no raw downtime to compare with)", downtimeVerdict(3*ms, 0))
	require.Equal(t, "met (0s against 0s, no raw downtime to compare with)", downtimeVerdict(0, 0))
}

func TestTouchedLeavesRoomForTheGuestsOwnMovement(t *testing.T) {
	require.Equal(t, uint64(0), touched(0))
	for _, n := range []uint64{mib, 512 * mib, 3*gib + 7} {
		require.Less(t, touched(n), n)
		require.GreaterOrEqual(t, float64(touched(n)), 0.89*float64(n))
	}
}
