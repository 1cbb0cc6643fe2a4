#!/usr/bin/env bash
# build.sh OUTDIR: builds the Vertigo guest image into OUTDIR:
#   OUTDIR/vmlinux            Debian's kernel as an ELF with a PVH note (QEMU -kernel)
#   OUTDIR/initramfs.cpio.gz  busybox, the virtio modules, init and the agent
# The kernel package is downloaded and unpacked once per version under
# ~/.cache/vertigo/kernel/; the initramfs is rebuilt only when one of its
# inputs changed. See README.md next to this script.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vertigo/kernel
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
busybox=/bin/busybox

# Modules the guest loads; their dependencies are added by resolve_module.
# virtio_blk and ext4 (crc32c_generic is ext4's checksum, found through the
# crypto API, not depends=) let an image's init mount its disk.
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	virtio_mem virtio_console virtio_net failover net_failover
	virtio_blk crc16 mbcache jbd2 crc32c_generic ext4)

die() { echo "build.sh: $*" >&2; exit 1; }

[[ -x $busybox ]] || die "$busybox missing: apt-get install -y --no-install-recommends busybox-static"
for tool in apt-get apt-cache dpkg-deb xz gzip sha256sum flock; do
	command -v "$tool" >/dev/null || die "$tool missing"
done

# Temporary directories, removed however the script ends.
tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

# One build at a time per OUTDIR: tests and make may run it concurrently.
exec 9>"$out/.lock"
flock 9

# kernel_package prints "NAME VERSION" of the kernel linux-image-amd64
# depends on, from the local apt lists.
kernel_package() {
	local name version
	name=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[[ -n $name ]] || return 1
	version=$(apt-cache show --no-all-versions "$name" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
	[[ -n $version ]] || return 1
	echo "$name $version"
}

# extract_vmlinux VMLINUZ DEST: the bzImage's payload is an xz stream; the
# first candidate offset of its magic that decompresses to an ELF wins.
extract_vmlinux() {
	local offset
	for offset in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | cut -d: -f1); do
		# Not a pipe: xz stops at the stream's end, and tail's SIGPIPE
		# would fail the pipeline.
		tail -c +$((offset + 1)) "$1" >"$2.xz"
		xz -dc --single-stream "$2.xz" >"$2" 2>/dev/null || continue
		if [[ $(head -c 4 "$2" | od -An -c | tr -d ' ') == '177ELF' ]]; then
			rm -f "$2.xz"
			return 0
		fi
	done
	die "no xz-compressed ELF found in $1"
}

# fetch_kernel NAME VERSION DIR: download, unpack and extract into DIR,
# atomically: DIR exists only when complete.
fetch_kernel() {
	local tmp
	tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
	tmpdirs+=("$tmp")
	(
		cd "$tmp"
		apt-get download -o APT::Sandbox::User=root -qq "$1=$2" ||
			{ apt-get update -qq && apt-get download -o APT::Sandbox::User=root -qq "$1=$2"; }
	) || die "cannot download $1=$2"
	dpkg-deb -x "$tmp"/*.deb "$tmp/root"
	rm -f "$tmp"/*.deb
	extract_vmlinux "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinux"
	mv "$tmp" "$3"
}

mkdir -p "$cache"
if ! pkg=$(kernel_package); then
	apt-get update -qq || true
	pkg=$(kernel_package) || pkg=
fi
if [[ -n $pkg ]]; then
	kdir=$cache/${pkg/ /_}
	[[ -d $kdir ]] || { echo "build.sh: fetching kernel $pkg" >&2; fetch_kernel $pkg "$kdir"; }
else
	# No apt metadata (offline): the newest kernel already cached will do.
	kdir=$(find "$cache" -mindepth 1 -maxdepth 1 -name 'linux-image-*' | sort -V | tail -1)
	[[ -n $kdir ]] || die "cannot resolve linux-image-amd64 (apt-get update failed?) and nothing is cached in $cache"
	echo "build.sh: apt cannot resolve linux-image-amd64; using cached $(basename "$kdir")" >&2
fi
kroot=$kdir/root
moddirs=("$kroot"/lib/modules/*)
moddir=${moddirs[0]}

work=$(mktemp -d)
tmpdirs+=("$work")

# The agent is static: the initramfs has no libc.
(cd "$repo" && CGO_ENABLED=0 GOTOOLCHAIN=local "$go" build -trimpath -ldflags '-s -w' \
	-o "$work/vertigo-agent" ./plugins/hypervisor-qemu/agent)

stamp=$( {
	echo "$kdir"
	sha256sum "$work/vertigo-agent" "$here/init" "$busybox" "${BASH_SOURCE[0]}" | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1)

if ! cmp -s "$kdir/vmlinux" "$out/vmlinux"; then
	cp "$kdir/vmlinux" "$out/.vmlinux.tmp"
	mv "$out/.vmlinux.tmp" "$out/vmlinux"
fi

# resolve_module NAME ROOT: copies NAME's dependencies, then NAME, into
# ROOT/lib/modules, appending each to modules.load, so that insmod in that
# order never misses a symbol.
declare -A loaded=()
resolve_module() {
	local name=$1 root=$2 file dep
	[[ -n ${loaded[$name]:-} ]] && return 0
	loaded[$name]=1
	file=$(find "$moddir/kernel" \( -name "$name.ko" -o -name "$name.ko.xz" \
		-o -name "${name//_/-}.ko" -o -name "${name//_/-}.ko.xz" \) -print -quit)
	if [[ -z $file ]]; then
		grep -q "/$name.ko\$" "$moddir/modules.builtin" && return 0
		die "module $name is neither in $(basename "$moddir") nor built in"
	fi
	case $file in
	*.xz) xz -dc "$file" >"$root/lib/modules/$name.ko" ;;
	*) cp "$file" "$root/lib/modules/$name.ko" ;;
	esac
	for dep in $(tr '\0' '\n' <"$root/lib/modules/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
		resolve_module "$dep" "$root"
	done
	echo "$name" >>"$root/lib/modules/modules.load"
}

# assemble_initramfs DEST: busybox, modules, init and agent as a gzipped
# newc archive.
assemble_initramfs() {
	local root=$work/root applet m
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
	cp "$busybox" "$root/bin/busybox"
	for applet in $("$busybox" --list); do
		[[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
	done
	install -m 755 "$here/init" "$root/init"
	cp "$work/vertigo-agent" "$root/vertigo-agent"
	for m in "${modules[@]}"; do
		resolve_module "$m" "$root"
	done
	(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -9n >"$1.tmp"
	mv "$1.tmp" "$1"
}

if [[ ! -f $out/initramfs.cpio.gz || $(cat "$out/.initramfs.stamp" 2>/dev/null) != "$stamp" ]]; then
	assemble_initramfs "$out/initramfs.cpio.gz"
	echo "$stamp" >"$out/.initramfs.stamp"
fi
echo "$out/vmlinux"
echo "$out/initramfs.cpio.gz"
