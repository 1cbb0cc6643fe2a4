package proc

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Start returns once exec has begun; the kernel publishes the new
	// command line a moment later.
	require.Eventually(t, func() bool {
		args, err := Cmdline(cmd.Process.Pid)
		return err == nil && len(args) > 0
	}, 10*time.Second, time.Millisecond, "sleep's command line never appeared")
	return cmd
}

func TestExitedClosesWhenTheProcessDies(t *testing.T) {
	cmd := startSleep(t)
	p, err := Open(cmd.Process.Pid)
	require.NoError(t, err)
	defer p.Close()
	require.True(t, p.Alive())

	require.NoError(t, p.Signal(unix.SIGKILL))
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("Exited not closed 10s after SIGKILL")
	}
	require.False(t, p.Alive())
	// Signalling a dead process is not an error: stopping is idempotent.
	require.NoError(t, p.Signal(unix.SIGKILL))
}

func TestCloseLetsGoWithoutReportingAnExit(t *testing.T) {
	cmd := startSleep(t)
	p, err := Open(cmd.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.True(t, p.Alive())
	alive, err := Open(cmd.Process.Pid)
	require.NoError(t, err, "the process must survive Close")
	alive.Close()
}

func TestAttachChecksTheRecordedIdentity(t *testing.T) {
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	args, err := Cmdline(pid)
	require.NoError(t, err)
	require.Equal(t, []string{"sleep", "60"}, args)
	start, err := StartTime(pid)
	require.NoError(t, err)
	require.NotZero(t, start)

	p, err := Attach(pid, args, start)
	require.NoError(t, err)
	p.Close()

	_, err = Attach(pid, []string{"qemu-system-x86_64", "-name", "a"}, start)
	require.ErrorContains(t, err, "pid was reused")
	_, err = Attach(pid, args, start+1)
	require.ErrorContains(t, err, "not at the recorded")
}

func TestOpenRefusesAMissingProcess(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, err := Open(cmd.Process.Pid)
	require.Error(t, err)
	_, err = Open(0)
	require.ErrorContains(t, err, "must be > 0")
}

func TestParseStartTimeSkipsAStrangeCommand(t *testing.T) {
	stat := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 50"
	v, err := parseStartTime(stat)
	require.NoError(t, err)
	require.Equal(t, uint64(987654), v)

	_, err = parseStartTime("4242 (x) S 1 2")
	require.ErrorContains(t, err, "at least 20")
	_, err = parseStartTime("garbage")
	require.ErrorContains(t, err, "no command field")
}
