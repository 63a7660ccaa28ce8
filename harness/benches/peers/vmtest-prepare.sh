#!/bin/sh
# Gets vmtest 0.18 ready to boot a Debian cloud kernel under TCG, for
# `cargo bench --bench boot`, which runs this and then vmtest doing the
# same check as vng (boot, insmod dummy, /sys/kernel/btf/dummy).
#
#   vmtest-prepare.sh OUT_DIR RELEASE MODULES_DIR VMLINUZ tcg|kvm
#
# vmtest boots a kernel with the host's / as its root over 9p, and it
# passes -enable-kvm whenever /dev/kvm exists. On this project's machines
# neither works as is: no KVM guest runs, and Debian's cloud kernels build
# no 9p. So OUT_DIR gets:
#   - 9p.cpio: an initramfs whose /init (static busybox) loads the kernel's
#     own virtio and netfs modules and 9pnet, 9pnet_virtio and 9p built
#     from the matching linux-source against the kernel's own headers
#     (about 7 s), mounts vmtest's 9p root and hands over to vmtest's init;
#   - qemu: the QEMU vmtest runs (its `qemu_command`), which adds 9p.cpio
#     and, for tcg, drops -enable-kvm and -cpu host for -accel tcg -cpu max;
#   - vmtest.toml: the target.
#
# What it needs, and where it says so (exit 3) when missing:
#   cargo install vmtest --version 0.18.0 --locked
#   apt-get install qemu-guest-agent busybox-static   (vmtest runs the
#     host's qemu-ga in the guest)
#   the kernel's headers and linux-source in btfvm's cache, which
#   `cargo test` fetches (the out-of-tree scenarios and the built kernels).
set -eu
out=$1 release=$2 modules=$3 vmlinuz=$4 accel=$5
cache=${BTFVM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/btfvm}
missing() { echo "vmtest: not measured: $*" >&2; exit 3; }

vmtest=$(command -v vmtest || echo "$HOME/.cargo/bin/vmtest")
[ -x "$vmtest" ] || missing "no vmtest (cargo install vmtest --version 0.18.0 --locked)"
command -v qemu-ga >/dev/null || [ -x /usr/sbin/qemu-ga ] ||
  missing "no qemu-ga on the host, which vmtest runs in the guest (apt-get install qemu-guest-agent)"
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q static ||
  missing "no static /bin/busybox (apt-get install busybox-static)"
headers=$(ls -d "$cache"/build/headers/"$release"_*/root/usr/src/linux-headers-"$release" 2>/dev/null | head -1)
[ -n "$headers" ] || missing "no headers of $release in $cache/build/headers (cargo test fetches them)"
series=$(echo "$release" | cut -d. -f1,2)
source=$(ls -d "$cache"/build/src/linux-source-"$series"_*/linux-source-"$series" 2>/dev/null | head -1)
[ -n "$source" ] || missing "no linux-source-$series in $cache/build/src (btfvm kernel build built-6.1-btf-on fetches it)"

mkdir -p "$out"
work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/root/m" "$work/root/bin"
cp -r "$source/net/9p" "$work/src/net9p"
cp -r "$source/fs/9p" "$work/src/fs9p"
echo 'obj-m += net9p/ fs9p/' > "$work/src/Kbuild"
make -s -C "$headers" M="$work/src" CONFIG_NET_9P=m CONFIG_NET_9P_VIRTIO=m CONFIG_9P_FS=m \
  -j"$(nproc)" modules >"$work/build.log" 2>&1 ||
  missing "building 9p against $headers failed (see the end of it: $(tail -1 "$work/build.log"))"
cp "$work/src/net9p/9pnet.ko" "$work/src/net9p/9pnet_virtio.ko" "$work/src/fs9p/9p.ko" "$work/root/m/"
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console netfs; do
  f=$(find "$modules/kernel" -name "$m.ko" | head -1)
  [ -n "$f" ] || missing "no $m.ko in $modules (this script knows uncompressed 6.1 module trees)"
  cp "$f" "$work/root/m/"
done
cp /bin/busybox "$work/root/bin/busybox"
cat >"$work/root/init" <<'EOF'
#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /dev /newroot
$B mount -t proc proc /proc
$B mount -t devtmpfs dev /dev
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console netfs 9pnet 9pnet_virtio 9p; do
  $B insmod /m/$m.ko || echo "vmtest-9p: insmod $m failed"
done
for w in $($B cat /proc/cmdline); do
  case $w in init=*) init=${w#init=} ;; rootflags=*) flags=${w#rootflags=} ;; esac
done
$B mount -t 9p -o "$flags" /dev/root /newroot || { echo "vmtest-9p: no 9p root"; $B poweroff -f; }
$B umount /proc
exec $B switch_root /newroot "$init"
EOF
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet) >"$out/9p.cpio"

if [ "$accel" = kvm ]; then
  cat >"$out/qemu" <<EOF
#!/bin/sh
# vmtest's QEMU with the 9p initramfs (made by vmtest-prepare.sh).
exec qemu-system-x86_64 -initrd "$out/9p.cpio" "\$@"
EOF
else
  cat >"$out/qemu" <<EOF
#!/bin/sh
# vmtest's QEMU: TCG instead of the KVM it picks whenever /dev/kvm exists,
# and the 9p initramfs (made by vmtest-prepare.sh).
args=
skip=
for a in "\$@"; do
  if [ -n "\$skip" ]; then skip=; continue; fi
  case "\$a" in
    -enable-kvm) continue ;;
    -cpu) skip=1; continue ;;
  esac
  args="\$args
\$a"
done
IFS='
'
exec qemu-system-x86_64 -accel tcg -cpu max -initrd "$out/9p.cpio" \$args
EOF
fi
chmod +x "$out/qemu"

dummy=$(find "$modules/kernel" -name dummy.ko | head -1)
[ -n "$dummy" ] || missing "no dummy.ko in $modules"
cat >"$out/vmtest.toml" <<EOF
[[target]]
name = "btf"
kernel = "$vmlinuz"
command = "sh -c 'insmod $dummy && test -e /sys/kernel/btf/dummy && echo btf-ok'"
qemu_command = "$out/qemu"

[target.vm]
memory = "256M"
EOF
echo "$vmtest"
