package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/sdk"
)

func TestDefaultsAreUsableAndPathsAbsolute(t *testing.T) {
	c, err := decodeConfig(nil)
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(wd, "state/qemu"), c.RunDir)
	require.Equal(t, filepath.Join(wd, "build/guest/vmlinux"), c.Kernel)
	require.Equal(t, filepath.Join(wd, "build"), c.ImagesDir, "image NAME is build/guest-NAME")
	require.Equal(t, "qemu-system-x86_64", c.QEMU, "a bare name is looked up in PATH")
	require.Equal(t, "qemu-img", c.QEMUImg)
	c, err = decodeConfig([]byte(`{"qemu_img":"bin/qemu-img"}`))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(wd, "bin/qemu-img"), c.QEMUImg, "a path is made absolute")
	require.Equal(t, "tcg", c.accel(), "auto never trusts this kind of host's KVM")
	nodes, err := c.nodes()
	require.NoError(t, err)
	require.Equal(t, []string{"node-a", "node-b"}, nodes)
	require.Equal(t, uint64(1<<30), c.MigrationBandwidth)
}

func TestBadConfigNamesEveryField(t *testing.T) {
	_, err := decodeConfig([]byte(`{"accel":"xen","nodes":"a,,b","stop_grace":0,"migration_bandwidth":0,"run_dir":""}`))
	var fe sdk.FieldErrors
	require.ErrorAs(t, err, &fe)
	fields := map[string]string{}
	for _, e := range fe {
		fields[e.Field] = e.Message
	}
	require.Equal(t, map[string]string{
		"accel":               `must be "auto", "tcg" or "kvm", got "xen"`,
		"migration_bandwidth": "must be > 0",
		"nodes":               `"" is not a valid node name`,
		"run_dir":             "must not be empty",
		"stop_grace":          "must be > 0, got 0s",
	}, fields)

	_, err = decodeConfig([]byte(`{"nodes":"a,b,a"}`))
	require.ErrorContains(t, err, `nodes: "a" is listed twice`)
	_, err = decodeConfig([]byte(`{"agent_timeout":"soon"}`))
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "agent_timeout", fe[0].Field)
	_, err = decodeConfig([]byte(`{"memory":1}`))
	require.ErrorContains(t, err, "unknown field")
}

func TestKVMMustOpenWhenAskedFor(t *testing.T) {
	c, err := decodeConfig([]byte(`{"accel":"kvm"}`))
	if f, openErr := os.OpenFile("/dev/kvm", os.O_RDWR, 0); openErr == nil {
		f.Close()
		require.NoError(t, err)
		require.Equal(t, "kvm", c.accel())
		return
	}
	require.ErrorContains(t, err, `accel: "kvm" needs /dev/kvm`)
}

func TestSetConfigIsIdempotentAndHealthSaysWhatIsMissing(t *testing.T) {
	p := newPlugin()
	run := t.TempDir()
	cfg := []byte(`{"run_dir":"` + run + `","kernel":"/nonexistent/vmlinux"}`)
	require.NoError(t, p.SetConfig(context.Background(), cfg, sdk.APIVersions[0]))
	first := p.fleet
	require.NoError(t, p.SetConfig(context.Background(), cfg, sdk.APIVersions[0]))
	require.Same(t, first, p.fleet, "the same configuration changes nothing")

	err := p.Health(context.Background())
	require.ErrorContains(t, err, "kernel: stat /nonexistent/vmlinux")
	require.ErrorContains(t, err, "make guest")

	caps := p.Capabilities(context.Background())
	require.Contains(t, caps, "hypervisor.live_migration")
	require.Equal(t, p.cpu != nil, slices.Contains(caps, "hypervisor.cpu_quota"), "cpu_quota only when a CPU controller works")
}
