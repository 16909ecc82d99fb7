#!/usr/bin/env bash
# Runs a command next to a real systemd at hardware speed, without a VM: systemd becomes
# PID 1 of new PID, mount and cgroup namespaces, in a cgroup of its own on the host's
# cgroup2 hierarchy, and CMD runs as root inside those namespaces, in a cgroup of its own
# (as an agent runs in its service's cgroup). Used to measure what systemd adds to a
# launch where the VM of tests/vm/run.sh (software emulation) is too slow to tell.
#
# usage: tests/bench/systemd-ns.sh CMD...
#   e.g. tests/bench/systemd-ns.sh target/release/holdfast-bench launch --launches 100
#
# Needs root and a writable cgroup2 mount (pure v2 at /sys/fs/cgroup, or hybrid at
# /sys/fs/cgroup/unified). systemd sees only its own subtree, which has whatever
# controllers the host delegates there (possibly none): this measures scope creation
# and process placement, not limits. The namespaces, systemd and its cgroups are removed
# on exit.
set -euo pipefail

die() {
  echo "systemd-ns: $*" >&2
  exit 1
}

[ $# -gt 0 ] || die "usage: $0 CMD..."
[ "$(id -u)" = 0 ] || die "must run as root"
SYSTEMD=/lib/systemd/systemd
[ -x $SYSTEMD ] || die "no $SYSTEMD (apt-get install systemd)"

if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  MOUNT=/sys/fs/cgroup
elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  MOUNT=/sys/fs/cgroup/unified
else
  die "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified"
fi

WORK=$(mktemp -d /tmp/holdfast-systemd-ns.XXXXXX)
CGROUP=$MOUNT/holdfast-systemd-ns-$$
SYSTEMD_PID=

cleanup() {
  if [ -n "$SYSTEMD_PID" ]; then
    # Killing PID 1 of the namespace kills everything in it.
    kill -9 "$SYSTEMD_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(cat "$CGROUP"/cgroup.procs 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  if [ -d "$CGROUP" ]; then
    # systemd's own cgroups, deepest first.
    find "$CGROUP" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir "$CGROUP" 2>/dev/null || echo "systemd-ns: could not remove $CGROUP" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# An empty unit directory with one target: systemd starts nothing else.
mkdir -p "$WORK/units"
printf '[Unit]\nDescription=Idle target for measurements\n' >"$WORK/units/idle.target"

cat >"$WORK/init.sh" <<EOF
#!/bin/bash
set -e
mount --make-rprivate /
# Only the namespace's cgroup2 subtree, mounted where systemd expects a pure v2 host.
umount -R /sys/fs/cgroup 2>/dev/null || true
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs tmpfs /run
mount --bind "$WORK/units" /lib/systemd/system
mount -t tmpfs tmpfs /etc/systemd/system
export container=holdfast-systemd-ns
exec $SYSTEMD --system --unit=idle.target --log-target=null
EOF
chmod +x "$WORK/init.sh"

mkdir "$CGROUP"
# The cgroup namespace is rooted where unshare runs, so it starts in $CGROUP.
setsid bash -c "echo \$\$ >'$CGROUP/cgroup.procs'; exec unshare -C -m -p -f --mount-proc '$WORK/init.sh'" \
  </dev/null >"$WORK/systemd.log" 2>&1 &
UNSHARE_PID=$!

for _ in $(seq 100); do
  # unshare forks once: its child becomes systemd.
  SYSTEMD_PID=$(pgrep -P "$UNSHARE_PID" || true)
  if [ -n "$SYSTEMD_PID" ] &&
    nsenter -t "$SYSTEMD_PID" -m test -S /run/systemd/private 2>/dev/null; then
    break
  fi
  sleep 0.1
done
[ -n "$SYSTEMD_PID" ] || die "systemd did not start: $(cat "$WORK/systemd.log")"
nsenter -t "$SYSTEMD_PID" -m test -S /run/systemd/private ||
  die "systemd started but has no private socket: $(cat "$WORK/systemd.log")"

# CMD in a cgroup of its own inside the namespace, as a service's process would be.
set +e
nsenter -t "$SYSTEMD_PID" -m -p -C --wd="$PWD" bash -c \
  'mkdir -p /sys/fs/cgroup/measure && echo $$ >/sys/fs/cgroup/measure/cgroup.procs && exec "$@"' \
  measure "$@"
rc=$?
set -e
exit $rc
