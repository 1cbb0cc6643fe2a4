package vm

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// imagesDir holds image "disk" (kernel, initramfs, rootfs.img) and image
// "plain" (no rootfs); the files are stand-ins, nothing boots them.
func imagesDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for image, files := range map[string][]string{"disk": {imageKernel, imageInitrd, imageRootfs}, "plain": {imageKernel, imageInitrd}} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, "guest-"+image), 0o755))
		for _, f := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "guest-"+image, f), make([]byte, 1<<20), 0o644))
		}
	}
	return dir
}

func TestImagesResolveByName(t *testing.T) {
	dir := imagesDir(t)
	env := &Env{ImagesDir: dir, Base: Machine{Kernel: "/k/vmlinux", Initrd: "/k/initrd"}}

	img, err := env.image("")
	require.NoError(t, err)
	require.Equal(t, Image{Kernel: "/k/vmlinux", Initrd: "/k/initrd"}, img, "the configured default, without a disk")

	img, err = env.image("disk")
	require.NoError(t, err)
	require.Equal(t, Image{
		Kernel: filepath.Join(dir, "guest-disk", "vmlinux"),
		Initrd: filepath.Join(dir, "guest-disk", "initramfs.cpio.gz"),
		Rootfs: filepath.Join(dir, "guest-disk", "rootfs.img"),
	}, img)

	img, err = env.image("plain")
	require.NoError(t, err)
	require.Empty(t, img.Rootfs, "rootfs.img is optional")

	_, err = env.image("nope")
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, `spec.image: no image "nope": stat `+filepath.Join(dir, "guest-nope", "vmlinux"))
}

func TestADiskIsCreatedOnceOverItsImageAndRemoved(t *testing.T) {
	if _, err := os.Stat("/usr/bin/qemu-img"); err != nil {
		t.Fatalf("qemu-img is missing (%v): apt-get install -y --no-install-recommends qemu-utils", err)
	}
	dir := imagesDir(t)
	env := &Env{ImagesDir: dir, RunDir: t.TempDir(), QEMUImg: "qemu-img"}
	ctx := context.Background()
	rootfs := filepath.Join(dir, "guest-disk", imageRootfs)

	path, created, err := env.ensureDisk(ctx, "pg-1", rootfs)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, DiskPath(env.RunDir, "pg-1"), path)
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	backing, err := env.backingFile(ctx, path)
	require.NoError(t, err)
	require.Equal(t, rootfs, backing, "a qcow2 overlay of the image's root filesystem")

	again, created, err := env.ensureDisk(ctx, "pg-1", rootfs)
	require.NoError(t, err)
	require.False(t, created, "a VM that starts again keeps its disk")
	infoAgain, err := os.Stat(again)
	require.NoError(t, err)
	require.Equal(t, info.Sys().(*syscall.Stat_t).Ino, infoAgain.Sys().(*syscall.Stat_t).Ino)

	_, _, err = env.ensureDisk(ctx, "pg-1", filepath.Join(dir, "guest-other", imageRootfs))
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "spec.image: pg-1 already has a disk")
	_, _, err = env.ensureDisk(ctx, "pg-1", "")
	require.ErrorIs(t, err, ErrInvalid, "nor does the disk's VM boot an image without one")

	path, created, err = env.ensureDisk(ctx, "plain-1", "")
	require.NoError(t, err)
	require.False(t, created)
	require.Empty(t, path, "no rootfs, no disk")

	require.NoError(t, RemoveDisk(env.RunDir, "pg-1"))
	require.NoFileExists(t, DiskPath(env.RunDir, "pg-1"))
	require.NoError(t, RemoveDisk(env.RunDir, "pg-1"), "removing a removed disk is fine")
	entries, err := os.ReadDir(filepath.Dir(DiskPath(env.RunDir, "pg-1")))
	require.NoError(t, err)
	require.Empty(t, entries, "no temporary file left")
}

// A rebuilt image repoints rootfs.img: a disk made over the earlier build
// keeps overlaying that build, whose blocks its data depends on, and a new
// VM gets the new build.
func TestARebuiltImageLeavesExistingDisksOverTheirBuild(t *testing.T) {
	dir := imagesDir(t)
	env := &Env{ImagesDir: dir, RunDir: t.TempDir(), QEMUImg: "qemu-img"}
	ctx := context.Background()
	image := filepath.Join(dir, "guest-disk")
	link := filepath.Join(image, imageRootfs)
	build := func(key string) {
		require.NoError(t, os.WriteFile(filepath.Join(image, "rootfs-"+key+".img"), make([]byte, 1<<20), 0o644))
		require.NoError(t, os.Remove(link))
		require.NoError(t, os.Symlink("rootfs-"+key+".img", link))
	}
	build("one")
	img, err := env.image("disk")
	require.NoError(t, err)
	require.Equal(t, filepath.Join(image, "rootfs-one.img"), img.Rootfs, "the build, not the link")
	old, _, err := env.ensureDisk(ctx, "pg-1", img.Rootfs)
	require.NoError(t, err)

	build("two")
	img, err = env.image("disk")
	require.NoError(t, err)
	again, created, err := env.ensureDisk(ctx, "pg-1", img.Rootfs)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, old, again)
	backing, err := env.backingFile(ctx, again)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(image, "rootfs-one.img"), backing)

	fresh, _, err := env.ensureDisk(ctx, "pg-2", img.Rootfs)
	require.NoError(t, err)
	backing, err = env.backingFile(ctx, fresh)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(image, "rootfs-two.img"), backing)
}
