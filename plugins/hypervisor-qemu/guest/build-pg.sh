#!/usr/bin/env bash
# build-pg.sh OUTDIR: builds the Vertigo Postgres guest image into OUTDIR:
#   OUTDIR/vmlinux            the normal guest's kernel (build.sh)
#   OUTDIR/initramfs.cpio.gz  the normal guest's initramfs, plus pg/rc as
#                             /etc/vertigo/rc (a second archive appended)
#   OUTDIR/rootfs.img         a link to rootfs-KEY.img, raw ext4: Debian bookworm minbase with
#                             PostgreSQL 15, configured from pg/
# The root file system takes a minute to build; it is cached under
# ~/.cache/vertigo/postgres/ by a hash of its inputs and rebuilt only when
# one changed. See README.md next to this script.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vertigo/postgres
suite=bookworm
busybox=/bin/busybox
# Sparse: only what Postgres writes takes space, in each VM's overlay.
image_size=2G

die() { echo "build-pg.sh: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 chroot sha256sum flock gzip; do
	command -v "$tool" >/dev/null || die "$tool missing (apt-get install -y --no-install-recommends debootstrap e2fsprogs)"
done

tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

# The kernel and the base initramfs are build.sh's, in a directory of our
# own: build.sh locks its OUTDIR and keeps its own stamp there.
"$here/build.sh" "$out/.base" >/dev/null

# One build at a time per OUTDIR, and one root file system build at a time
# per cache (a second builder waits, then finds it cached).
exec 8>"$out/.pg.lock"
flock 8
mkdir -p "$cache"
exec 7>"$cache/.lock"
flock 7

# mirror prints the Debian mirror apt uses for $suite, from one-line
# (sources.list, *.list) or deb822 (*.sources) entries.
mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		# deb [options] URI SUITE COMPONENTS...
		awk -v s="$suite" '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
			if ($(i + 1) == s) { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		# One paragraph per entry: Types:, URIs:, Suites: lines.
		awk -v s="$suite" -v RS= '{
			types = suites = uris = ""
			n = split($0, l, "\n")
			for (j = 1; j <= n; j++) {
				if (l[j] ~ /^Types:/) types = " " substr(l[j], 7) " "
				if (l[j] ~ /^Suites:/) suites = " " substr(l[j], 8) " "
				if (l[j] ~ /^URIs:/) uris = substr(l[j], 6)
			}
			split(uris, u, " ")
			if (types ~ / deb / && suites ~ " " s " " && u[1] != "") { print u[1]; exit }
		}' "$f"
	done
}
debian=${VERTIGO_DEBIAN_MIRROR:-$(mirror | head -1)}
[[ -n $debian ]] || die "no Debian $suite mirror in /etc/apt/sources.list*; set VERTIGO_DEBIAN_MIRROR"

key=$( {
	echo "$suite $debian $image_size"
	sha256sum "${BASH_SOURCE[0]}" "$here/pg/postgresql.conf" "$here/pg/pg_hba.conf" "$here/pg/setup.sql" | cut -d' ' -f1
} | sha256sum | cut -c1-16)
img=$cache/rootfs-$key.img

# build_root DIR: Debian with PostgreSQL 15, configured, trimmed.
build_root() {
	local root=$1 etc=$1/etc/postgresql/15/main ids
	# The package's install script runs initdb: the cluster exists after.
	# C.UTF-8 gives it UTF8 and a locale that ships with libc.
	LC_ALL=C.UTF-8 LANG=C.UTF-8 debootstrap --variant=minbase --include=postgresql-15 \
		"$suite" "$root" "$debian" >"$root.log" 2>&1 ||
		die "debootstrap failed; its log: $(tail -20 "$root.log")"
	ids=$(stat -c %u:%g "$root/var/lib/postgresql/15/main")
	install -m 644 -o "${ids%:*}" -g "${ids#*:}" "$here/pg/postgresql.conf" "$etc/conf.d/vertigo.conf"
	install -m 640 -o "${ids%:*}" -g "${ids#*:}" "$here/pg/pg_hba.conf" "$etc/pg_hba.conf"
	# Single-user mode needs no socket, network or /dev/shm.
	chroot --userspec="$ids" "$root" /usr/lib/postgresql/15/bin/postgres --single \
		-D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf \
		-c dynamic_shared_memory_type=mmap postgres <"$here/pg/setup.sql" >"$root.sql.log" 2>&1 ||
		die "creating the role and database failed: $(cat "$root.sql.log")"
	grep -q ERROR "$root.sql.log" && die "creating the role and database failed: $(cat "$root.sql.log")"
	# What a database VM never reads: docs, translations, apt's state, and
	# LLVM, which only the JIT uses (jit = off) and which is most of the size.
	rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/lib/apt/lists/* \
		"$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
		"$root"/usr/lib/x86_64-linux-gnu/libLLVM* "$root"/usr/lib/x86_64-linux-gnu/libz3* \
		"$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode \
		"$root"/var/log/postgresql/*
	mkdir -p "$root/dev/shm"
}

if [[ ! -f $img ]]; then
	echo "build-pg.sh: building the Postgres root file system ($suite from $debian)" >&2
	work=$(mktemp -d "$cache/.build.XXXXXX")
	tmpdirs+=("$work")
	build_root "$work/root"
	truncate -s "$image_size" "$work/rootfs.img"
	mkfs.ext4 -q -F -L vertigo-pg -d "$work/root" "$work/rootfs.img"
	mv "$work/rootfs.img" "$img"
	# Older roots are dead weight: a few hundred MB each.
	find "$cache" -maxdepth 1 -name 'rootfs-*.img' ! -name "rootfs-$key.img" -delete
fi

# Each build stays under its own name, and rootfs.img links to the newest:
# a VM's disk is an overlay of the build it was made over, which must never
# change under it. Old builds go with `make clean` (and the VMs' disks).
if [[ ! -f $out/rootfs-$key.img ]]; then
	cp --sparse=always "$img" "$out/.rootfs.img.tmp"
	mv "$out/.rootfs.img.tmp" "$out/rootfs-$key.img"
fi
if [[ $(readlink "$out/rootfs.img" 2>/dev/null) != "rootfs-$key.img" ]]; then
	[[ -L $out/rootfs.img || ! -e $out/rootfs.img ]] || rm -f "$out/rootfs.img" # a file from before builds were kept
	ln -sfn "rootfs-$key.img" "$out/.rootfs.img.link"
	mv -T "$out/.rootfs.img.link" "$out/rootfs.img"
fi
rm -f "$out/.rootfs.key"

# The initramfs is the base one with a second archive appended: the kernel
# unpacks concatenated archives in order, adding /etc/vertigo/rc.
overlay=$(mktemp -d)
tmpdirs+=("$overlay")
install -D -m 755 "$here/pg/rc" "$overlay/root/etc/vertigo/rc"
(cd "$overlay/root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -9n >"$overlay/rc.cpio.gz"
cat "$out/.base/initramfs.cpio.gz" "$overlay/rc.cpio.gz" >"$overlay/initramfs.cpio.gz"
for f in initramfs.cpio.gz vmlinux; do
	src=$overlay/$f
	[[ $f == vmlinux ]] && src=$out/.base/vmlinux
	if ! cmp -s "$src" "$out/$f"; then
		cp "$src" "$out/.$f.tmp"
		mv "$out/.$f.tmp" "$out/$f"
	fi
done
echo "$out/vmlinux"
echo "$out/initramfs.cpio.gz"
echo "$out/rootfs.img"
