package bench

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

const statusFixture = `Name:	vertigo-placeme
Umask:	0022
State:	S (sleeping)
Pid:	4242
PPid:	4200
VmPeak:	 1260544 kB
VmSize:	 1260544 kB
VmHWM:	   21732 kB
VmRSS:	   20480 kB
RssAnon:	    9216 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	name, rss, err := parseStatus(statusFixture)
	require.NoError(t, err)
	require.Equal(t, "vertigo-placeme", name)
	require.Equal(t, uint64(20480*1024), rss)

	_, _, err = parseStatus("Name:\tkworker/0:1\nState:\tI (idle)\n")
	require.ErrorContains(t, err, "no VmRSS")
	_, _, err = parseStatus("Name:\tx\nVmRSS:\t  12 MB\n")
	require.ErrorContains(t, err, "VmRSS")
}

func TestParsePIDs(t *testing.T) {
	pids, err := parsePIDs("4243 4250 \n")
	require.NoError(t, err)
	require.Equal(t, []int{4243, 4250}, pids)

	pids, err = parsePIDs("")
	require.NoError(t, err)
	require.Empty(t, pids)

	_, err = parsePIDs("12 x")
	require.ErrorContains(t, err, `"x"`)
}

func TestCPUTicksBetweenCountsNewProcessesFromZero(t *testing.T) {
	first := []procSample{{PID: 1, CPUTicks: 100}, {PID: 2, CPUTicks: 50}, {PID: 3, CPUTicks: 70}}
	// 2 exited, 4 started (a restarted plugin).
	last := []procSample{{PID: 1, CPUTicks: 130}, {PID: 3, CPUTicks: 71}, {PID: 4, CPUTicks: 5}}
	require.Equal(t, uint64(30+1+5), cpuTicksBetween(first, last))
}

func TestSampleTreeFindsAChild(t *testing.T) {
	child := exec.Command("sleep", "60")
	require.NoError(t, child.Start())
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})

	samples, err := sampleTree(procRoot, os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), samples[0].PID)
	require.Positive(t, samples[0].RSS)
	var found *procSample
	for i := range samples[1:] {
		if samples[1+i].PID == child.Process.Pid {
			found = &samples[1+i]
		}
	}
	require.NotNil(t, found, "child %d not among %v", child.Process.Pid, samples)
	require.Equal(t, "sleep", found.Name)
	require.Positive(t, found.RSS)
}
