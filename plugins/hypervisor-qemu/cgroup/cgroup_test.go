package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQuotaIsThousandthsOfThePeriod(t *testing.T) {
	require.Equal(t, int64(25000), Quota(250))
	require.Equal(t, int64(150000), Quota(1500))
	require.Equal(t, int64(400000), Quota(4000))
	// The kernel refuses less than 1 ms.
	require.Equal(t, int64(1000), Quota(1))
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

// A fake cgroupfs can only show what is written where: the kernel's side
// is covered by TestLimitsARealProcess.
func TestV2WritesCPUMaxAndEnablesTheController(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644))
	c, err := Detect(root)
	require.NoError(t, err)
	require.Equal(t, "v2", c.Version())
	require.Equal(t, "+cpu", read(t, filepath.Join(root, "cgroup.subtree_control")))
	require.Equal(t, "+cpu", read(t, filepath.Join(root, "vertigo", "cgroup.subtree_control")))

	require.NoError(t, c.Limit("pg-1@node-a", 4242, 1500))
	dir := filepath.Join(root, "vertigo", "pg-1@node-a")
	require.Equal(t, "150000 100000", read(t, filepath.Join(dir, "cpu.max")))
	require.Equal(t, "4242", read(t, filepath.Join(dir, "cgroup.procs")))
	require.NoError(t, c.SetQuota("pg-1@node-a", 250))
	require.Equal(t, "25000 100000", read(t, filepath.Join(dir, "cpu.max")))
	require.NoError(t, c.Unlimit("pg-1@node-a"))
	require.Equal(t, "max 100000", read(t, filepath.Join(dir, "cpu.max")), "no cap while a migration runs")
}

// Each VM weighs as many busy threads as it has vCPUs, and the parent
// group all of them: a cap alone does not get a VM its CPUs when others
// contend for them.
func TestWeightFollowsTheVCPUs(t *testing.T) {
	for _, v := range []struct {
		name, file      string
		setup           func(root string) string // returns the parent group
		vm1, vm2, alone string
	}{
		{"v2", "cpu.weight", func(root string) string {
			require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu\n"), 0o644))
			return filepath.Join(root, "vertigo")
		}, "150", "25", "100"},
		{"v1", "cpu.shares", func(root string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(root, "cpu"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(root, "cpu", "cpu.cfs_quota_us"), []byte("-1\n"), 0o644))
			return filepath.Join(root, "cpu", "vertigo")
		}, "1536", "256", "1024"},
	} {
		t.Run(v.name, func(t *testing.T) {
			root := t.TempDir()
			parent := v.setup(root)
			c, err := Detect(root)
			require.NoError(t, err)
			require.NoError(t, c.Limit("a", 1, 1500))
			require.NoError(t, c.Limit("b", 2, 250))
			require.Equal(t, v.vm1, read(t, filepath.Join(parent, "a", v.file)))
			require.Equal(t, v.vm2, read(t, filepath.Join(parent, "b", v.file)))
			sum := func(a, b string) string {
				x, _ := strconv.Atoi(a)
				y, _ := strconv.Atoi(b)
				return strconv.Itoa(x + y)
			}
			require.Equal(t, sum(v.vm1, v.vm2), read(t, filepath.Join(parent, v.file)), "the parent weighs all its VMs")

			require.NoError(t, c.SetQuota("b", 1500))
			require.Equal(t, sum(v.vm1, v.vm1), read(t, filepath.Join(parent, v.file)), "a resize reweighs the parent")

			// A fake group's files are not removed with it as the kernel's
			// are: remove them first.
			require.NoError(t, os.RemoveAll(filepath.Join(parent, "b")))
			require.NoError(t, c.Remove("b"))
			require.Equal(t, v.vm1, read(t, filepath.Join(parent, v.file)))
			require.NoError(t, os.RemoveAll(filepath.Join(parent, "a")))
			require.NoError(t, c.Remove("a"))
			require.Equal(t, v.alone, read(t, filepath.Join(parent, v.file)), "never below one thread")
		})
	}
}

func TestV1WritesPeriodThenQuota(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "cpu"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "cpu", "cpu.cfs_quota_us"), []byte("-1\n"), 0o644))
	c, err := Detect(root)
	require.NoError(t, err)
	require.Equal(t, "v1", c.Version())
	require.NoError(t, c.Limit("vm", 99, 500))
	dir := filepath.Join(root, "cpu", "vertigo", "vm")
	require.Equal(t, "100000", read(t, filepath.Join(dir, "cpu.cfs_period_us")))
	require.Equal(t, "50000", read(t, filepath.Join(dir, "cpu.cfs_quota_us")))
	require.Equal(t, "99", read(t, filepath.Join(dir, "cgroup.procs")))
	require.NoError(t, c.Unlimit("vm"))
	require.Equal(t, "-1", read(t, filepath.Join(dir, "cpu.cfs_quota_us")), "no cap while a migration runs")
}

func TestDetectSaysWhyThereIsNoController(t *testing.T) {
	_, err := Detect(t.TempDir())
	require.ErrorContains(t, err, "no cgroup v2 cpu controller")

	root := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("memory pids\n"), 0o644))
	_, err = Detect(root)
	require.ErrorContains(t, err, "has no cpu controller")
}

// TestLimitsARealProcess runs against this machine's cgroups, v1 or v2.
func TestLimitsARealProcess(t *testing.T) {
	c, err := Detect("/sys/fs/cgroup")
	if err != nil {
		t.Skipf("this machine offers no CPU quota, so the plugin does not declare hypervisor.cpu_quota: %v", err)
	}
	cmd := exec.Command("sleep", "60")
	require.NoError(t, cmd.Start())
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		require.NoError(t, c.Remove(t.Name()))
		require.NoDirExists(t, c.Dir(t.Name()))
		require.NoError(t, c.Remove(t.Name()), "removing twice is fine")
	}()
	require.NoError(t, c.Limit(t.Name(), cmd.Process.Pid, 250))
	require.Contains(t, read(t, fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)), "/vertigo/"+t.Name())
	if c.Version() == "v2" {
		require.Equal(t, "25000 100000", read(t, filepath.Join(c.Dir(t.Name()), "cpu.max")))
	} else {
		require.Equal(t, "25000", read(t, filepath.Join(c.Dir(t.Name()), "cpu.cfs_quota_us")))
	}
	require.Equal(t, strconv.FormatInt(c.weight(250), 10), read(t, filepath.Join(c.Dir(t.Name()), c.weightFile())), "the kernel took the weight")
}
