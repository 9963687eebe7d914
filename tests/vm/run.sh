#!/usr/bin/env bash
# Runs a command inside a qemu guest (TCG; KVM with BERTH_VM_ACCEL=kvm) whose only cgroup hierarchy is cgroup v2, so the engine's v2
# paths are exercised on this cgroup v1 (hybrid) host: `tests/vm/run.sh CMD [ARGS...]`.
#
# The guest boots Debian's kernel (tests/vm/kernel.sh) with a small initramfs (static busybox,
# the kernel modules it needs), mounts the host's root read-only over virtio-9p and switches
# into a root made of the host's /usr, /etc, /opt and /work (read-only binds, so binaries and
# test executables keep their paths) plus fresh tmpfs /tmp, /run, /var; the current directory,
# $CARGO_TARGET_DIR and the paths in $BERTH_VM_SHARE are bound back read-only from the host
# when they live anywhere else (/tmp, /check, ...); it mounts cgroup2 alone
# at /sys/fs/cgroup with the cpu, memory, pids, io and cpuset controllers enabled, runs CMD
# from the current directory, and powers off. The output is CMD's; the exit status is CMD's
# (125 if the guest did not report one). Needs qemu-system-x86.
# Env: BERTH_VM_MEM (MiB, default 3072), BERTH_VM_CPUS (default 2), BERTH_VM_TIMEOUT (s, 900).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: tests/vm/run.sh CMD [ARGS...]" >&2; exit 2; }
[ -e /dev/kvm ] || { echo "tests/vm/run.sh: /dev/kvm is missing: cannot boot the cgroup v2 guest" >&2; exit 125; }
command -v qemu-system-x86_64 >/dev/null || { echo "tests/vm/run.sh: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 125; }
[ -x /bin/busybox ] || { echo "tests/vm/run.sh: /bin/busybox is missing (apt-get install busybox-static)" >&2; exit 125; }
kdir=$(bash "$here/kernel.sh")
kver=$(ls "$kdir/lib/modules")
work=$(mktemp -d /tmp/berth-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The initramfs: busybox, the modules (in load order) and the init script.
ird=$work/initrd
mkdir -p "$ird"/{bin,modules,proc,sys,dev,host,newroot}
cp /bin/busybox "$ird/bin/busybox"
# (names, or directories of the module tree: everything under them; netfilter for the engine's
# nftables rules, bridge and veth for its networks; crc32c first: conntrack asks the crypto
# API for it and nothing in the guest can load a module on demand)
/usr/bin/python3 - "$kdir/lib/modules/$kver" "$ird/modules" crc32c_generic crc32c_intel 9pnet_virtio 9p virtio_pci overlay veth bridge \
  kernel/net/netfilter/ kernel/net/ipv4/netfilter/ kernel/net/ipv6/netfilter/ kernel/net/bridge/ <<'PY'
import os, re, shutil, sys
root, out, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
paths = {}
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith(".ko"):
            paths[f[:-3].replace("-", "_")] = os.path.join(d, f)
def deps(name):
    data = open(paths[name], "rb").read()
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    return [x.decode().replace("-", "_") for x in m.group(1).split(b",") if x] if m else []
order, seen = [], set()
def visit(n):
    if n in seen or n not in paths:
        return
    seen.add(n)
    for d in deps(n):
        visit(d)
    order.append(n)
for w in wanted:
    if w.endswith("/"):
        for n, p in sorted(paths.items()):
            if os.path.relpath(p, root).startswith(w):
                visit(n)
    else:
        visit(w)
with open(os.path.join(out, "order"), "w") as f:
    for n in order:
        shutil.copy(paths[n], os.path.join(out, n + ".ko"))
        f.write(n + ".ko\n")
PY
cat > "$ird/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
mount -t tmpfs -o mode=755 root /newroot
mkdir /newroot/.host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro,cache=loose hostroot /newroot/.host || {
  echo "BERTH_VM: cannot mount the host root over 9p"; echo o > /proc/sysrq-trigger; }
for e in /newroot/.host/*; do
  n=${e#/newroot/.host/}
  if [ -L "$e" ]; then ln -s "$(readlink "$e")" "/newroot/$n"; fi
done
for n in usr etc opt work; do
  [ -d "/newroot/.host/$n" ] && mkdir -p "/newroot/$n" && mount --bind "/newroot/.host/$n" "/newroot/$n"
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run /newroot/var /newroot/root
job=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^berth_job=//p')
cp "/newroot/.host$job" /newroot/job.sh
umount -l /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/sh /job.sh
INIT
chmod +x "$ird/init"

# The job the guest runs after switch_root: mounts, cgroup v2, the command, power off.
{
  echo '#!/bin/sh'
  echo 'mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev'
  echo 'mkdir -p /dev/pts /dev/shm; mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts; mount -t tmpfs shm /dev/shm'
  echo 'mount -t tmpfs tmp /tmp; mount -t tmpfs run /run; mount -t tmpfs var /var; mkdir -p /var/lib /var/tmp'
  # Host paths the command needs (the repo, the target dir) that the binds above do not show:
  # under the fresh tmpfs dirs or anywhere else (a CI checkout under /check, say).
  for p in "$PWD" ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR"} ${BERTH_VM_SHARE:-}; do
    case $p in
      /usr/*|/etc/*|/opt/*|/work/*) ;;
      /*) printf 'mkdir -p %q && mount --bind %q %q\n' "$p" "/.host$p" "$p" ;;
    esac
  done
  echo 'mount -t cgroup2 cgroup2 /sys/fs/cgroup'
  echo 'echo "+cpu +memory +pids +io +cpuset" > /sys/fs/cgroup/cgroup.subtree_control'
  echo 'ip link set lo up 2>/dev/null'
  echo 'export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
  echo 'echo BERTH_VM_START'
  printf '%q ' "$@"; echo
  echo 'echo "BERTH_VM_EXIT=$?"'
  echo 'sync; echo o > /proc/sysrq-trigger'
} > "$work/job.sh"
(cd "$ird" && find . | cpio -o -H newc --quiet) > "$work/initrd.cpio"

# KVM when it boots here, else TCG (this host's nested KVM does not get past the guest's
# firmware: BERTH_VM_ACCEL=kvm forces it).
accel="-accel tcg,thread=multi -cpu max"
[ "${BERTH_VM_ACCEL:-tcg}" = kvm ] && accel="-enable-kvm -cpu host,-arch-capabilities"
log=$work/console.log
set +e
timeout "${BERTH_VM_TIMEOUT:-900}" qemu-system-x86_64 $accel -m "${BERTH_VM_MEM:-3072}" \
  -smp "${BERTH_VM_CPUS:-2}" -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "$kdir/vmlinuz" -initrd "$work/initrd.cpio" \
  -append "console=ttyS0 ${BERTH_VM_KERNEL_ARGS:-quiet loglevel=3} panic=-1 rdinit=/init berth_job=$work/job.sh" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
  | tee "$log" | tr -d '\r' | awk '/BERTH_VM_EXIT=/{sub(/BERTH_VM_EXIT=.*/, ""); if (p && $0 != "") print; exit} p{print; fflush()} /BERTH_VM_START/{p=1}'
set -e
code=$(grep -a -o 'BERTH_VM_EXIT=[0-9]*' "$log" | tail -1 | cut -d= -f2 || true)
[ -n "$code" ] || { echo "tests/vm/run.sh: the guest did not report an exit status" >&2; exit 125; }
exit "$code"
