package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/vm"
	"github.com/vertigo-autoscaler/vertigo/sdk"
	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
	"github.com/vertigo-autoscaler/vertigo/sdk/schema"
)

// configSchema is the plugin's `config {}` block; README.md documents it.
func configSchema() *pb.ConfigSchema {
	return schema.Of(
		schema.String("run_dir", "state/qemu", "directory of the VMs' state (spec.json, pid, sockets, serial.log per instance); relative to the plugin's working directory"),
		schema.String("qemu", "qemu-system-x86_64", "the QEMU binary, a path or a name looked up in PATH"),
		schema.String("kernel", "build/guest/vmlinux", "the guest kernel, an uncompressed ELF with a PVH note (make guest)"),
		schema.String("initrd", "build/guest/initramfs.cpio.gz", "the guest initramfs with the agent (make guest)"),
		schema.String("images_dir", "build", "directory of the named guest images: image NAME is guest-NAME/ with vmlinux, initramfs.cpio.gz and optionally rootfs.img (raw, the VM's disk is a qcow2 overlay of it)"),
		schema.String("qemu_img", "qemu-img", "the qemu-img binary that creates the VMs' disks, a path or a name looked up in PATH"),
		schema.String("accel", "auto", "auto: TCG (KVM is not trusted to run a guest unless asked for); tcg; kvm: fails unless /dev/kvm opens", "auto", "tcg", "kvm"),
		schema.String("cpu_model", "qemu64", "QEMU -cpu model; its hotpluggable vCPUs must match"),
		schema.String("nodes", "node-a,node-b", "comma-separated logical nodes this machine hosts: VMs start on and migrate between these only"),
		schema.Bytes("migration_bandwidth", 1<<30, "bytes per second a migration may use when the request sets none"),
		schema.Duration("migration_downtime", 300*time.Millisecond, "the pause a migration may cause when the request sets none"),
		schema.Duration("consent_timeout", 5*time.Second, "how long a guest has to consent to a downscale when the request sets no timeout"),
		schema.Duration("stop_grace", 10*time.Second, "how long a guest has to power off when the request sets no grace"),
		schema.Duration("agent_timeout", 30*time.Second, "how long StartVM waits for the guest agent's hello"),
		schema.Duration("resize_timeout", 20*time.Second, "how long a resize waits for the guest to online or offline what it got"),
	)
}

var defaultsJSON = func() []byte {
	b, err := schema.Defaults(configSchema())
	if err != nil {
		panic("qemu plugin config schema: " + err.Error())
	}
	return b
}()

// config is the decoded `config {}` block, paths made absolute.
type config struct {
	RunDir             string        `json:"run_dir"`
	QEMU               string        `json:"qemu"`
	Kernel             string        `json:"kernel"`
	Initrd             string        `json:"initrd"`
	ImagesDir          string        `json:"images_dir"`
	QEMUImg            string        `json:"qemu_img"`
	Accel              string        `json:"accel"`
	CPUModel           string        `json:"cpu_model"`
	Nodes              string        `json:"nodes"`
	MigrationBandwidth uint64        `json:"migration_bandwidth"`
	MigrationDowntime  time.Duration `json:"migration_downtime"`
	ConsentTimeout     time.Duration `json:"consent_timeout"`
	StopGrace          time.Duration `json:"stop_grace"`
	AgentTimeout       time.Duration `json:"agent_timeout"`
	ResizeTimeout      time.Duration `json:"resize_timeout"`
}

// decodeConfig decodes SetConfig's JSON over the defaults and checks it,
// naming every attribute it rejects.
func decodeConfig(configJSON []byte) (config, error) {
	var c config
	if err := json.Unmarshal(defaultsJSON, &c); err != nil {
		return c, fmt.Errorf("qemu plugin config defaults: %w", err)
	}
	if len(configJSON) > 0 {
		if err := sdk.DecodeConfig(configJSON, &c); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return c, sdk.FieldErrors{{Field: te.Field, Message: fmt.Sprintf("want a %s, got a JSON %s", te.Type, te.Value)}}
			}
			return c, err
		}
	}
	var errs sdk.FieldErrors
	check := func(ok bool, field, format string, args ...any) {
		if !ok {
			errs = append(errs, sdk.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
		}
	}
	for field, v := range map[string]string{"run_dir": c.RunDir, "qemu": c.QEMU, "kernel": c.Kernel, "initrd": c.Initrd, "images_dir": c.ImagesDir, "qemu_img": c.QEMUImg, "cpu_model": c.CPUModel} {
		check(v != "", field, "must not be empty")
	}
	check(slices.Contains([]string{"auto", "tcg", "kvm"}, c.Accel), "accel", `must be "auto", "tcg" or "kvm", got %q`, c.Accel)
	if _, err := c.nodes(); err != nil {
		check(false, "nodes", "%v", err)
	}
	check(c.MigrationBandwidth > 0, "migration_bandwidth", "must be > 0")
	for field, d := range map[string]time.Duration{"migration_downtime": c.MigrationDowntime, "consent_timeout": c.ConsentTimeout, "stop_grace": c.StopGrace, "agent_timeout": c.AgentTimeout, "resize_timeout": c.ResizeTimeout} {
		check(d > 0, field, "must be > 0, got %s", d)
	}
	if c.Accel == "kvm" {
		if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
			check(false, "accel", `"kvm" needs /dev/kvm: %v`, err)
		} else {
			f.Close()
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b sdk.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return c, errs
	}
	paths := []*string{&c.RunDir, &c.Kernel, &c.Initrd, &c.ImagesDir}
	// A binary's bare name is looked up in PATH.
	for _, bin := range []*string{&c.QEMU, &c.QEMUImg} {
		if strings.Contains(*bin, "/") {
			paths = append(paths, bin)
		}
	}
	for _, p := range paths {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return c, err
		}
		*p = abs
	}
	return c, nil
}

// nodes parses the node list.
func (c config) nodes() ([]string, error) {
	var nodes []string
	for n := range strings.SplitSeq(c.Nodes, ",") {
		n = strings.TrimSpace(n)
		if err := vm.ValidateName("node", n); err != nil {
			return nil, fmt.Errorf("%q is not a valid node name", n)
		}
		if slices.Contains(nodes, n) {
			return nil, fmt.Errorf("%q is listed twice", n)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// accel is the accelerator QEMU gets. "auto" means TCG: the /dev/kvm of
// this kind of machine accepts QEMU yet barely runs a Linux guest, and no
// cheap probe tells such a KVM from a good one.
func (c config) accel() string {
	if c.Accel == "kvm" {
		return "kvm"
	}
	return "tcg"
}

// missing says what the configured machine lacks to start a VM, or nil.
func (c config) missing() error {
	if _, err := exec.LookPath(c.QEMU); err != nil {
		return fmt.Errorf("qemu: %v (apt-get install -y --no-install-recommends qemu-system-x86)", err)
	}
	for _, f := range []struct{ field, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}} {
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s: %v (run `make guest` to build the guest image)", f.field, err)
		}
	}
	return nil
}
