#!/usr/bin/env bash
# Builds (or finds in the cache) the guest for the Linux-initiator harness and prints the directory
# that holds it: vmlinuz (Debian's stock cloud kernel), initrd.img (busybox: loads virtio, mounts
# the root) and root.img (ext4: a debootstrap minbase root with open-iscsi, fio, e2fsprogs,
# sg3-utils and multipath-tools, plus the kernel's modules).
#
# The result is cached under $RINGTGT_VM_CACHE (default /var/cache/ringtgt-vm), keyed by a hash
# of this script and of the two files baked into the image, so editing any of them rebuilds and
# an unchanged harness reuses the image (a build fetches ~100 MiB from the Debian mirror and takes
# one to two minutes; the cached path takes well under a second). The test script itself is not
# in the image: run.sh hands it to the guest on a disk, so changing the checks never rebuilds.
#
# Needs root (debootstrap, file ownership in the image), apt-get, debootstrap, dpkg-deb, depmod,
# cpio and mkfs.ext4 (e2fsprogs >= 1.43 for -d); run.sh installs them.
#
# Environment:
#   RINGTGT_VM_CACHE   cache directory (default /var/cache/ringtgt-vm)
#   RINGTGT_VM_MIRROR  Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   RINGTGT_VM_SUITE   Debian suite of the guest root (default bookworm)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

CACHE=${RINGTGT_VM_CACHE:-/var/cache/ringtgt-vm}
MIRROR=${RINGTGT_VM_MIRROR:-http://deb.debian.org/debian}
SUITE=${RINGTGT_VM_SUITE:-bookworm}
# Packages of the guest root. udev comes along as a dependency of open-iscsi and multipath-tools;
# points 1-6 never start it (devtmpfs creates /dev/sdX by itself, and the test finds LUNs through
# sysfs), point 7 does, because multipathd learns of new paths and their WWIDs from udev.
# multipath-tools brings kpartx, dmsetup and sg3-utils-udev along as dependencies.
PACKAGES=open-iscsi,fio,e2fsprogs,sg3-utils,multipath-tools,iproute2,kmod,procps,util-linux
# Modules the initramfs loads (with their dependencies) to reach the root disk; everything else
# (virtio_net, iscsi_tcp, sd_mod) is loaded by modprobe from the root.
INITRAMFS_MODULES=(virtio_pci virtio_blk)

log() { echo "build-image: $*" >&2; }

KEY=$(cat "$HERE/build-image.sh" "$HERE/initramfs-init" "$HERE/guest-init" |
    { cat; echo "$SUITE $MIRROR"; } | sha256sum | cut -c1-16)
OUT=$CACHE/$KEY

if [[ -s $OUT/root.img && -s $OUT/vmlinuz && -s $OUT/initrd.img ]]; then
    log "cached image $OUT"
    echo "$OUT"
    exit 0
fi

mkdir -p "$CACHE"
# One build at a time per cache: a second run waits for the first and then uses its result.
exec 9>"$CACHE/.lock"
flock -w 900 9 || { log "timed out waiting for another build ($CACHE/.lock)"; exit 1; }
if [[ -s $OUT/root.img ]]; then
    echo "$OUT"
    exit 0
fi

START=$SECONDS
WORK=$(mktemp -d "$CACHE/.build.XXXXXX")
cleanup() {
    # debootstrap may leave /proc or /sys mounted inside the root on failure.
    local m
    for m in proc sys dev/pts dev; do
        umount -l "$WORK/root/$m" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR"
if ! timeout 900 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$WORK/root" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1; then
    log "debootstrap failed; the end of its log:"
    tail -n 40 "$WORK/debootstrap.log" >&2
    tail -n 40 "$WORK/root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    exit 1
fi
log "debootstrap done ($((SECONDS - START))s)"

# The stock Debian cloud kernel, unpacked rather than installed: installing it would pull in
# initramfs-tools and build an initramfs we do not use. The metapackage names the current ABI.
KPKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
if [[ -z $KPKG ]]; then
    log "apt-get update (no linux-image-cloud-amd64 in the host's package lists)"
    apt-get update -q >&2
    KPKG=$(apt-cache depends linux-image-cloud-amd64 |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n1)
fi
[[ -n $KPKG ]] || { log "cannot resolve linux-image-cloud-amd64"; exit 1; }
log "kernel package $KPKG"
mkdir -p "$WORK/deb"
# busybox-static too, for the initramfs: fetched, not installed (it would replace a host's
# dynamically linked busybox).
(cd "$WORK/deb" && timeout 600 apt-get -o APT::Sandbox::User=root download -q "$KPKG" busybox-static >&2)
dpkg-deb -x "$WORK"/deb/busybox-static_*.deb "$WORK/busybox"
# Unpacked beside the root, not into it: tar would replace the root's merged-/usr symlink /lib
# with a directory holding only the modules, and the guest could then find no shared library.
dpkg-deb -x "$WORK"/deb/"$KPKG"_*.deb "$WORK/kernel"
KVER=${KPKG#linux-image-}
mkdir -p "$WORK/root/lib/modules"
for d in "$WORK/kernel/lib/modules" "$WORK/kernel/usr/lib/modules"; do
    if [[ -d $d ]]; then cp -a "$d/." "$WORK/root/lib/modules/"; fi
done
depmod -b "$WORK/root" "$KVER"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
rm -rf "$WORK/kernel"

# The guest's PID 1 (run.sh's test script arrives later, on a disk).
install -m 0755 "$HERE/guest-init" "$WORK/root/sbin/ringtgt-guest-init"
echo ringtgt-vm >"$WORK/root/etc/hostname"
# Space we do not need in every cached copy.
rm -rf "$WORK"/root/usr/share/{doc,man,info,locale} "$WORK"/root/var/cache/apt/archives/*.deb \
    "$WORK"/root/var/lib/apt/lists/*

# initramfs: static busybox, /init, and the modules to reach /dev/vda in dependency order.
# Modules may be compressed (.ko.xz/.ko.zst in newer kernels); busybox insmod wants them plain.
IRD=$WORK/initramfs
mkdir -p "$IRD"/{bin,dev,proc,sys,newroot,lib/modules}
BB=$(find "$WORK/busybox" -path "*/bin/busybox" -type f | head -n1)
[[ -n $BB ]] || { log "no busybox binary in busybox-static"; exit 1; }
cp "$BB" "$IRD/bin/busybox"
install -m 0755 "$HERE/initramfs-init" "$IRD/init"
MODDIR=$WORK/root/lib/modules/$KVER
declare -A SEEN=()
ORDER=()
add_module() { # add_module PATH-relative-to-MODDIR: its dependencies first, then itself
    local rel=$1 dep
    [[ -n ${SEEN[$rel]:-} ]] && return 0
    SEEN[$rel]=1
    for dep in $(sed -n "s|^$rel: *||p" "$MODDIR/modules.dep"); do
        add_module "$dep"
    done
    ORDER+=("$rel")
}
for m in "${INITRAMFS_MODULES[@]}"; do
    rel=$(grep -E "/$m\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | cut -d: -f1 | head -n1)
    if [[ -z $rel ]]; then
        # Built into the kernel: nothing to load.
        grep -qE "/$m\.ko" "$MODDIR/modules.builtin" || { log "module $m not found"; exit 1; }
        continue
    fi
    add_module "$rel"
done
for rel in "${ORDER[@]}"; do
    name=$(basename "$rel")
    case $name in
    *.ko.xz) xz -dc "$MODDIR/$rel" >"$IRD/lib/modules/${name%.xz}" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" >"$IRD/lib/modules/${name%.zst}" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" >"$IRD/lib/modules/${name%.gz}" ;;
    *) cp "$MODDIR/$rel" "$IRD/lib/modules/$name" ;;
    esac
    basename "${name%.ko*}.ko" >>"$IRD/modules.order"
done
log "initramfs modules: $(tr '\n' ' ' <"$IRD/modules.order")"
(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.img"

# The root image, filled from the directory without mounting anything. Sized to the content
# plus room for the guest's own writes (iscsi node records, logs); it runs with snapshot=on,
# so the cached copy is never modified.
SIZE_MB=$(($(du -sm "$WORK/root" | cut -f1) * 5 / 4 + 128))
mkfs.ext4 -q -F -L ringtgt-vm -d "$WORK/root" "$WORK/root.img" "${SIZE_MB}M" >&2

# Publish atomically: a run interrupted before this line leaves nothing in $OUT.
mkdir -p "$WORK/out"
mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/root.img" "$WORK/out/"
echo "$KPKG" >"$WORK/out/kernel-package"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
# Older builds (other keys) are dropped so the cache does not grow without bound.
find "$CACHE" -mindepth 1 -maxdepth 1 -type d ! -name "$KEY" ! -path "$WORK" -exec rm -rf {} +
log "built $OUT in $((SECONDS - START))s"
echo "$OUT"
