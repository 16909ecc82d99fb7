#!/usr/bin/env bash
# Runs Holdfast's test suite inside a throw-away QEMU VM whose PID 1 is systemd on a pure
# cgroup v2 hierarchy with every controller: the host this project is built for.
#
# usage: tests/vm/run.sh [options] [-- nextest-run-args...]
#   Without nextest args it runs nextest's `vm` profile (.config/nextest.toml): the tests
#   of the layers that meet systemd and the cgroup2 controllers. `-- --profile default`
#   runs everything.
#   --shell CMD   run CMD (bash) in the guest instead of the test suite (debugging)
#   --no-build    reuse the last test archive instead of building one
#   --prepare     install packages and fetch/build the cached kernel and initramfs, then exit
#   -v            show the guest console on stderr
#   -k            keep the job dir (console log, command, output)
# env:
#   HOLDFAST_VM_CACHE    cache dir (default ~/.cache/holdfast-vm)
#   HOLDFAST_VM_MEM      guest MiB (default 4096)       HOLDFAST_VM_CPUS  guest CPUs (default 2)
#   HOLDFAST_VM_TIMEOUT  seconds for the whole run (default 3000)
#   HOLDFAST_VM_KERNEL_PKG  Debian kernel package (default: what linux-image-amd64 depends on)
#
# How: the host builds a nextest archive of the workspace. QEMU (software emulation; no KVM
# needed) boots a Debian kernel with an initramfs that mounts the host's root read-only over
# virtio-9p under a tmpfs overlay, so host-built binaries and tools run at their usual paths.
# systemd boots to a target that starts one oneshot unit; it runs nextest from the archive
# with HOLDFAST_REQUIRE_CGROUP2=1, HOLDFAST_REQUIRE_CONTROLLERS=1 and HOLDFAST_REQUIRE_SYSTEMD=1 (tests that need them
# fail instead of skipping) and powers the VM off. The exit status is nextest's; 124 means
# the run timed out, 125 that the VM failed before a status came back.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd -P)
CACHE=${HOLDFAST_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/holdfast-vm}
MEM=${HOLDFAST_VM_MEM:-4096}
CPUS=${HOLDFAST_VM_CPUS:-2}
TIMEOUT=${HOLDFAST_VM_TIMEOUT:-3000}
SHELL_CMD=
BUILD=1
PREPARE_ONLY=0
VERBOSE=0
KEEP=0

die() {
  echo "vm: $*" >&2
  exit 125
}

while [ $# -gt 0 ]; do
  case $1 in
    --shell) SHELL_CMD=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --prepare) PREPARE_ONLY=1; shift ;;
    -v) VERBOSE=1; shift ;;
    -k) KEEP=1; shift ;;
    --) shift; break ;;
    *) die "unknown option '$1' (see the header of $0)" ;;
  esac
done
# No nextest args: the VM profile (see the header).
[ $# -gt 0 ] || set -- --profile vm
[ "$(id -u)" = 0 ] || die "must run as root (QEMU's 9p export must read every host file)"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "$@" >&2; } ||
    die "apt-get install $* failed"
}

# qemu, a static busybox for the initramfs (no libc there), cpio to pack it, xz to unpack
# the kernel.
ensure_packages() {
  local want=()
  command -v qemu-system-x86_64 >/dev/null || want+=(qemu-system-x86)
  if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then want+=(busybox-static); fi
  command -v cpio >/dev/null || want+=(cpio)
  command -v xz >/dev/null || want+=(xz-utils)
  command -v zstd >/dev/null || want+=(zstd)
  [ ${#want[@]} -eq 0 ] || { echo "vm: installing ${want[*]}" >&2; apt_install "${want[@]}"; }
}

kernel_package() {
  local v
  v=$(apt-cache policy linux-image-amd64 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [ -n "$v" ] && [ "$v" != "(none)" ] || return 1
  apt-cache show "linux-image-amd64=$v" 2>/dev/null |
    sed -n 's/^Depends: \(linux-image-[^ ,]*-amd64\).*/\1/p' | head -1
}

# A stock Debian kernel (not -cloud: it lacks 9p), unpacked without installing it.
ensure_kernel() {
  [ -f "$CACHE/kernel/kver" ] && return
  local pkg=${HOLDFAST_VM_KERNEL_PKG:-}
  [ -n "$pkg" ] || pkg=$(kernel_package) || true
  [ -n "$pkg" ] || { apt-get update -q >&2; pkg=$(kernel_package) || true; }
  [ -n "$pkg" ] || die "cannot tell which kernel package to use; set HOLDFAST_VM_KERNEL_PKG"
  echo "vm: fetching $pkg" >&2
  local t
  t=$(mktemp -d "$CACHE/.kernel.XXXXXX")
  (cd "$t" && apt-get -o APT::Sandbox::User=root download -q "$pkg" >&2) ||
    { apt-get update -q >&2 && (cd "$t" && apt-get -o APT::Sandbox::User=root download -q "$pkg" >&2); } ||
    die "apt-get download $pkg failed"
  dpkg -x "$t"/*.deb "$t/x"
  local kver
  kver=$(ls "$t/x/lib/modules")
  mkdir -p "$t/kernel/lib"
  mv "$t/x/boot/vmlinuz-$kver" "$t/kernel/vmlinuz"
  mv "$t/x/lib/modules" "$t/kernel/lib/modules"
  # QEMU can boot the uncompressed ELF through its PVH entry, which skips the in-guest
  # decompression (seconds under emulation). Keep the bzImage as the fallback.
  local off
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$t/kernel/vmlinuz" | head -1 | cut -d: -f1) || true
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$t/kernel/vmlinuz" | xz -dcq >"$t/kernel/vmlinux" 2>/dev/null || true
    [ "$(head -c 4 "$t/kernel/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || rm -f "$t/kernel/vmlinux"
  fi
  echo "$kver" >"$t/kernel/kver"
  rm -rf "$CACHE/kernel"
  mv "$t/kernel" "$CACHE/kernel"
  rm -rf "$t"
}

# The initramfs loads virtio, 9p and overlayfs, mounts the host root read-only with a tmpfs
# overlay on top (plus the job dir's files as a layer above it), and switches to systemd.
INITRAMFS_VERSION=2
ensure_initramfs() {
  IRD=$CACHE/initramfs-$INITRAMFS_VERSION.cpio.gz
  [ -f "$IRD" ] && return
  local kver t m
  kver=$(cat "$CACHE/kernel/kver")
  t=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
  mkdir -p "$t"/{bin,dev,proc,sys,mod,host,job,rw,root}
  cp /bin/busybox "$t/bin/busybox"
  for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
    drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci drivers/block/virtio_blk fs/netfs/netfs \
    fs/fscache/fscache net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay; do
    [ -f "$CACHE/kernel/lib/modules/$kver/kernel/$m.ko" ] || continue # built in elsewhere
    cp "$CACHE/kernel/lib/modules/$kver/kernel/$m.ko" "$t/mod/"
    echo "${m##*/}" >>"$t/mod/order"
  done
  cat >"$t/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
fail() { echo "holdfast-vm init: $*" > /dev/console; poweroff -f; sleep 60; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /mod/order); do insmod "/mod/$m.ko" || fail "insmod $m"; done
p9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $p9,ro,cache=loose host /host || fail "mount host root"
mount -t 9p -o $p9,cache=none job /job || fail "mount job dir"
. /job/conf
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/job/layer:/host,upperdir=/rw/upper,workdir=/rw/work overlay /root ||
  fail "overlay"
mkdir -p /root/holdfast-vm && mount --bind /job /root/holdfast-vm
mount --bind "/root$MODULES" "/root$MODDIR" || fail "modules"
# The host's /tmp must not leak in: the guest gets its own.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /root/tmp
rm -f /root/.dockerenv
if [ -n "$SRCDIR" ]; then
  mkdir -p "/root$SRCDIR" && mount -t 9p -o $p9,ro,cache=loose src "/root$SRCDIR" || fail "mount $SRCDIR"
fi
mount --move /dev /root/dev
mount --move /proc /root/proc
mount --move /sys /root/sys
exec switch_root /root /lib/systemd/systemd
EOF
  chmod 755 "$t/init"
  (cd "$t" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$IRD.tmp"
  mv "$IRD.tmp" "$IRD"
  rm -rf "$t"
}

mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock 8
ensure_packages
ensure_kernel
ensure_initramfs
flock -u 8
exec 8>&-
if [ "$PREPARE_ONLY" = 1 ]; then
  echo "vm: cache ready in $CACHE" >&2
  exit 0
fi

ARCHIVE=$SRC/target/vm/tests.tar.zst
if [ -z "$SHELL_CMD" ] && [ "$BUILD" = 1 ]; then
  echo "vm: building the test archive" >&2
  mkdir -p "$SRC/target/vm"
  (cd "$SRC" && cargo nextest archive --workspace --archive-file "$ARCHIVE" >&2)
fi
if [ -z "$SHELL_CMD" ]; then
  [ -f "$ARCHIVE" ] || die "no test archive at $ARCHIVE (run without --no-build)"
fi

JOB=$(mktemp -d "$CACHE/job.XXXXXX")
chmod 755 "$JOB"
QEMU_PID=
finish() {
  [ -z "$QEMU_PID" ] || kill "$QEMU_PID" 2>/dev/null || true
  if [ "$KEEP" = 1 ]; then echo "vm: job dir kept: $JOB" >&2; else rm -rf "$JOB"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# Units a test run does not need; each process started at boot costs a second under emulation.
MASK=(systemd-timesyncd.service systemd-pstore.service systemd-firstboot.service
  systemd-repart.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
  systemd-machine-id-commit.service systemd-pcrphase.service systemd-pcrphase-sysinit.service
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer
  man-db.timer getty.target systemd-journal-flush.service systemd-sysusers.service
  systemd-update-utmp.service systemd-random-seed.service systemd-modules-load.service
  systemd-sysctl.service systemd-tmpfiles-setup-dev.service modprobe@.service
  kmod-static-nodes.service dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount
  sys-kernel-tracing.mount sys-kernel-config.mount sys-fs-fuse-connections.mount)

L=$JOB/layer
mkdir -p "$L/etc/systemd/system" "$L/etc/systemd/system-generators"
for u in "${MASK[@]}"; do ln -s /dev/null "$L/etc/systemd/system/$u"; done
for g in /usr/lib/systemd/system-generators/* /etc/systemd/system-generators/*; do
  [ -e "$g" ] && ln -sf /dev/null "$L/etc/systemd/system-generators/${g##*/}"
done
: >"$L/etc/fstab"
cat >"$L/etc/systemd/system/holdfast-vm.target" <<'EOF'
[Unit]
Description=Holdfast VM test run
Requires=basic.target
Wants=holdfast-vm.service dbus.socket
After=basic.target
AllowIsolate=yes
EOF
cat >"$L/etc/systemd/system/holdfast-vm.service" <<'EOF'
[Unit]
Description=Holdfast VM test command
After=basic.target dbus.socket
Wants=dbus.socket
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate
[Service]
Type=oneshot
ExecStart=/bin/bash /holdfast-vm/guest
TimeoutStartSec=infinity
StandardInput=null
StandardOutput=journal+console
StandardError=journal+console
Environment=HOME=/root
EOF

KVER=$(cat "$CACHE/kernel/kver")
# Debian's /lib is a symlink into /usr; a real /lib in the layer would hide it.
MODDIR=/lib/modules/$KVER
[ -L /lib ] && MODDIR=/usr/lib/modules/$KVER
mkdir -p "$L$MODDIR"
# The source tree is visible through the host root unless it lives under /tmp, which the
# guest replaces with its own; then its parent gets a read-only export, so that what lies
# beside the tree (the shared fixtures in ../shared) is visible too.
SRCDIR=
case $SRC/ in /tmp/* | /run/* | /dev/shm/*) SRCDIR=$(dirname "$SRC") ;; esac
# ... but never all of /tmp, which must stay the guest's own and writable.
case $SRCDIR in /tmp | /run | /dev/shm) SRCDIR=$SRC ;; esac
printf 'MODULES=%q\nMODDIR=%q\nSRCDIR=%q\n' "$CACHE/kernel/lib/modules/$KVER" "$MODDIR" "$SRCDIR" >"$JOB/conf"

{
  echo 'exec > /holdfast-vm/out 2>&1'
  echo 'echo "vm: guest up after $(cut -d" " -f1 /proc/uptime)s, cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"'
  printf 'cd %q\n' "$SRC"
  echo 'export PATH=/root/.cargo/bin:/usr/local/cargo/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin'
  echo 'export HOLDFAST_REQUIRE_CGROUP2=1 HOLDFAST_REQUIRE_CONTROLLERS=1 HOLDFAST_REQUIRE_SYSTEMD=1 HOLDFAST_VM=1'
  # A scratch disk (sparse, thrown away with the VM) for the io limit tests.
  echo 'export HOLDFAST_TEST_BLOCK_DEVICE=/dev/vda'
  for e in RUST_BACKTRACE RUST_LOG NEXTEST_PROFILE HOLDFAST_REQUIRE_PYMESOS HOLDFAST_PYMESOS_VENV; do
    [ -z "${!e+x}" ] || printf 'export %s=%q\n' "$e" "${!e}"
  done
  echo 'rc=0'
  if [ -n "$SHELL_CMD" ]; then
    printf 'bash -c %q || rc=$?\n' "$SHELL_CMD"
  else
    printf 'cargo-nextest nextest run --archive-file %q --workspace-remap %q' "$ARCHIVE" "$SRC"
    printf ' %q' "$@"
    printf ' || rc=$?\n'
  fi
  echo 'echo "$rc" > /holdfast-vm/rc.tmp && mv /holdfast-vm/rc.tmp /holdfast-vm/rc'
  echo 'sync'
} >"$JOB/guest"
: >"$JOB/out"

KERNEL=$CACHE/kernel/vmlinux
[ -f "$KERNEL" ] || KERNEL=$CACHE/kernel/vmlinuz
CMDLINE="console=ttyS0 quiet loglevel=3 panic=-1 rw systemd.unified_cgroup_hierarchy=1"
CMDLINE+=" cgroup_no_v1=all systemd.unit=holdfast-vm.target systemd.show_status=error"
CMDLINE+=" systemd.log_color=0 fstab=no"
truncate -s 1G "$JOB/scratch.img"
EXPORTS=(-drive "file=$JOB/scratch.img,if=virtio,format=raw"
  -virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"
  -virtfs "local,path=$JOB,mount_tag=job,security_model=none")
[ -z "$SRCDIR" ] ||
  EXPORTS+=(-virtfs "local,path=${SRCDIR//,/,,},mount_tag=src,security_model=none,readonly=on,multidevs=remap")
if [ "$VERBOSE" = 1 ]; then
  SERIAL=(-chardev "stdio,id=con,logfile=$JOB/console.log,signal=off" -serial chardev:con)
else
  SERIAL=(-serial "file:$JOB/console.log")
fi

# Stream the guest's output as it is written.
tail -n +1 -F -s 0.5 "$JOB/out" 2>/dev/null &
TAIL_PID=$!
qemu_rc=0
# One emulation thread: multi-threaded TCG on a 2-core host makes boot times erratic.
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config -display none \
  -accel tcg,thread=single -cpu max -smp "$CPUS" -m "$MEM" \
  -kernel "$KERNEL" -initrd "$IRD" -append "$CMDLINE" -no-reboot \
  "${SERIAL[@]}" "${EXPORTS[@]}" </dev/null >&2 &
QEMU_PID=$!
wait "$QEMU_PID" || qemu_rc=$?
QEMU_PID=
sleep 1
kill "$TAIL_PID" 2>/dev/null || true
wait "$TAIL_PID" 2>/dev/null || true

if [ -s "$JOB/rc" ]; then exit "$(cat "$JOB/rc")"; fi
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
  echo "vm: timed out after ${TIMEOUT}s; end of the console log:" >&2
  tail -n 40 "$JOB/console.log" >&2 || true
  exit 124
fi
echo "vm: the VM stopped without an exit status (qemu exit $qemu_rc); end of the console log:" >&2
tail -n 60 "$JOB/console.log" >&2 || true
exit 125
