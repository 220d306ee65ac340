#!/bin/bash
# boot.sh is PID 1 of a private pid+mount namespace (started by the tests
# with unshare, see boot.go). It fences the machine off, then execs systemd.
# Every check that fails stops it before systemd runs.
#
# Environment: TFTEST_HOST_MNTNS (readlink /proc/self/ns/mnt of the host),
# TFTEST_STAGE (a directory whose bin/ and units/ are copied into /run),
# TFTEST_SYSTEMD_TREE (optional: a dpkg -x tree of another systemd version).
set -euo pipefail
die() { echo "tftest-boot: refusing to go on: $*" >&2; exit 1; }

# 1. PID 1 of a new pid namespace, in a mount namespace that is not the host's.
[ "$$" -eq 1 ] || die "not PID 1 (pid $$)"
[ -n "${TFTEST_HOST_MNTNS:-}" ] || die "TFTEST_HOST_MNTNS not set"
[ "$(readlink /proc/self/ns/mnt)" != "$TFTEST_HOST_MNTNS" ] || die "in the host's mount namespace"
[ -n "${container:-}" ] || die "container= not set"

# 2. Nothing mounted here propagates to the host.
mount --make-rprivate /

# 3. A private /run, with the units and binaries under test.
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/systemd/system /run/tftest
cp -a "$TFTEST_STAGE/bin" /run/tftest/bin
cp -a "$TFTEST_STAGE/units/." /run/systemd/system/

# 4. A private /dev: only harmless devices from the host.
mkdir /run/tftest/dev
mount -t tmpfs -o mode=755,nosuid tmpfs /run/tftest/dev
for d in null zero full random urandom tty; do
	touch "/run/tftest/dev/$d"
	mount --bind "/dev/$d" "/run/tftest/dev/$d"
done
mkdir /run/tftest/dev/pts /run/tftest/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /run/tftest/dev/pts
ln -s pts/ptmx /run/tftest/dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /run/tftest/dev/shm
touch /run/tftest/dev/console # a file: systemd's console output lands here
ln -s /proc/self/fd /run/tftest/dev/fd
mount --move /run/tftest/dev /dev

# Another systemd version, bound over the installed one (nothing on the
# host changes: these binds exist in this namespace only).
if [ -n "${TFTEST_SYSTEMD_TREE:-}" ]; then
	t=$TFTEST_SYSTEMD_TREE
	[ -x "$t/lib/systemd/systemd" ] || die "no systemd in $t"
	mount --bind "$t/lib/systemd" /usr/lib/systemd
	mount --bind "$t/usr/lib/x86_64-linux-gnu/systemd" /usr/lib/x86_64-linux-gnu/systemd
	mount --bind "$t/bin/systemctl" /usr/bin/systemctl
	mount --bind "$t/bin/journalctl" /usr/bin/journalctl
fi
/usr/lib/systemd/systemd --version | head -1

# 5. Mask whatever a boot would pull in or that writes outside /run,
# generated from the unit directories.
for dir in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
	[ -d "$dir" ] && ls "$dir"
done | sort -u | grep -E \
	-e '^(sysinit|basic|sockets|timers|paths|local-fs|local-fs-pre|swap|remote-fs|remote-fs-pre|getty|multi-user|graphical|network|network-online|network-pre|nss-lookup|time-sync|cryptsetup|veritysetup|integritysetup)\.target$' \
	-e '^systemd-tmpfiles' \
	-e 'udev|sysctl|sysusers|remount-fs|random-seed|binfmt|journal-flush|machine-id-commit|update-utmp|modules-load|firstboot|hwdb|logind|timesyncd|networkd|resolved|fsck|quota|pstore|boot-|ldconfig|hibernate|rfkill|backlight|oomd|homed|userdb|cron|ssh|getty|serial' \
	-e '^(dev|sys|proc|tmp|run|var|home|boot|srv)(-.*)?\.(mount|automount|swap)$' \
	-e '\.swap$' |
	grep -v -e '^systemd-journald' -e '@$' |
	while read -r unit; do
		[ -e "/run/systemd/system/$unit" ] || ln -s /dev/null "/run/systemd/system/$unit"
	done
[ -L /run/systemd/system/systemd-tmpfiles-setup.service ] || die "systemd-tmpfiles-setup.service not masked"
[ -L /run/systemd/system/sysinit.target ] || die "sysinit.target not masked"

# 6. cgroup2 of this namespace (the tests gave it a fresh cgroup), /sys read-only.
umount -R /sys/fs/cgroup
mount -o remount,bind,ro /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

# 7. tmpfs where a service or journald could write.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
[ -d /var/log/journal ] && mount -t tmpfs -o mode=2755 tmpfs /var/log/journal

# 8. Every other mount read-only: / and whatever is mounted below it.
keep='^/(run|dev|tmp|var/tmp|var/log/journal|sys|proc)(/|$)'
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
	m=$(printf '%b' "$m")
	[[ "$m" =~ $keep ]] && continue
	mount -o remount,bind,ro "$m" 2>/dev/null || die "cannot make $m read-only"
done
for p in /proc/sys /proc/sysrq-trigger; do
	[ -e "$p" ] || continue # no sysrq-trigger on kernels without magic SysRq
	mount --bind "$p" "$p"
	mount -o remount,bind,ro "$p"
done
if probe=$(mktemp /.tftest-rw.XXXXXX 2>/dev/null); then
	rm -f "$probe"
	die "/ is still writable"
fi
for p in / /proc/sys /proc/sysrq-trigger; do
	[ "$p" = / ] || [ -e "$p" ] || continue
	opts=$(awk -v m="$p" '$5 == m {o=$6} END {print o}' /proc/self/mountinfo)
	[[ ",$opts," == *,ro,* ]] || die "$p is still writable ($opts)"
done
if ( : >/proc/sys/kernel/ns_last_pid ) 2>/dev/null; then die "/proc/sys is still writable"; fi

echo "tftest-boot: fenced; starting systemd"
exec /usr/lib/systemd/systemd --system --unit=tftest.target --log-target=journal-or-kmsg
