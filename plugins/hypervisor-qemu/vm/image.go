package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Files of a guest image directory, <images dir>/guest-NAME/.
const (
	imageKernel = "vmlinux"
	imageInitrd = "initramfs.cpio.gz"
	imageRootfs = "rootfs.img"
)

// Image is a guest image: a kernel, its initramfs and, optionally, a raw
// root filesystem each VM gets a copy-on-write disk of.
type Image struct {
	Kernel, Initrd, Rootfs string
}

// image resolves a spec's image name: "" is the configured default, which
// has no disk.
func (e *Env) image(name string) (Image, error) {
	if name == "" {
		return Image{Kernel: e.Base.Kernel, Initrd: e.Base.Initrd}, nil
	}
	dir := filepath.Join(e.ImagesDir, "guest-"+name)
	img := Image{Kernel: filepath.Join(dir, imageKernel), Initrd: filepath.Join(dir, imageInitrd)}
	for _, f := range []string{img.Kernel, img.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return img, invalid("spec.image: no image %q: %v", name, err)
		}
	}
	// rootfs.img may link to a build of the root (build-pg.sh keeps every
	// build a disk may overlay): a disk records the build it was made over,
	// never the name a rebuild repoints.
	switch rootfs, err := filepath.EvalSymlinks(filepath.Join(dir, imageRootfs)); {
	case err == nil:
		img.Rootfs = rootfs
	case !errors.Is(err, os.ErrNotExist):
		return img, fmt.Errorf("image %q: %w", name, err)
	}
	return img, nil
}

// DiskPath is where a VM's disk lives: one per VM, not per instance, since
// both QEMUs of a migration open it.
func DiskPath(runDir, name string) string {
	return filepath.Join(runDir, "disks", name+".qcow2")
}

// ensureDisk gives VM name its disk, a qcow2 overlay over rootfs ("" for
// none), creating it unless it exists: a VM restarted after a failure keeps
// its data. It reports whether it created the disk.
func (e *Env) ensureDisk(ctx context.Context, name, rootfs string) (path string, created bool, err error) {
	path = DiskPath(e.RunDir, name)
	backing, err := e.backingFile(ctx, path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return "", false, err
	case backing != rootfs && filepath.Dir(backing) == filepath.Dir(rootfs) && rootfs != "":
		// An earlier build of the same image: the disk holds the VM's
		// data, so it stays over the build it was made on.
		return path, false, nil
	case backing != rootfs:
		return "", false, invalid("spec.image: %s already has a disk %s over %q, not over this image's %q: stop the VM (which deletes its disk) before changing its image", name, path, backing, rootfs)
	default:
		return path, false, nil
	}
	if rootfs == "" {
		return "", false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	// Created aside and renamed: a crash never leaves half a disk under
	// the VM's name.
	tmp := path + ".tmp"
	out, err := exec.CommandContext(ctx, e.QEMUImg, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", rootfs, tmp).CombinedOutput()
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", false, fmt.Errorf("creating the disk of %s over %s: %v %s", name, rootfs, err, out)
	}
	return path, true, nil
}

// backingFile is the file a disk overlays; os.ErrNotExist without a disk.
func (e *Env) backingFile(ctx context.Context, path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", err
	}
	// -U: a QEMU that outlived a failure may still hold the disk's lock.
	out, err := exec.CommandContext(ctx, e.QEMUImg, "info", "-U", "--output=json", path).Output()
	if err != nil {
		return "", fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var info struct {
		Backing string `json:"full-backing-filename"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info.Backing, nil
}

// RemoveDisk deletes VM name's disk, if it has one: the VM is gone for good.
func RemoveDisk(runDir, name string) error {
	if err := os.Remove(DiskPath(runDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
