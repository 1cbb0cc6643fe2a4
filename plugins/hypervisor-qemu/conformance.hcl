# The QEMU plugin's config for `make test`'s conformance run: its own run
# directory, and the guest image `make guest` builds. Paths are relative to
# this file.
run_dir = "../../build/conformance/qemu"
kernel  = "../../build/guest/vmlinux"
initrd  = "../../build/guest/initramfs.cpio.gz"
