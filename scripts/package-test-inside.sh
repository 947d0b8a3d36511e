#!/bin/sh
# The part of scripts/package-test.sh that runs inside the clean Debian root, as root, in a
# network namespace of its own, with the packages in /tmp/debs. Every step says what it checks;
# the first failure ends the script with its reason.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
say() { echo "inside: $*"; }
fail() { echo "inside: FAIL: $*" >&2; exit 1; }
DAEMONS="director lockmgr monitord heartbeatd webmon"

# The interfaces and addresses the sample configurations name (eth0, eth1, heartbeatd's
# 192.168.10.1), as veth pairs (the kernel may lack the dummy driver): this namespace has no
# other.
ip link set lo up
for i in eth0 eth1; do
    ip link add "$i" type veth peer name "${i}p"
    ip link set "$i" up
    ip link set "${i}p" up
done
ip addr add 192.168.10.1/24 dev eth1

say "apt-get install ./lvs-*.deb"
cd /tmp/debs
apt-get install -y -q --no-install-recommends ./lvs-*.deb >/tmp/apt.log 2>&1 || {
    cat /tmp/apt.log >&2
    fail "apt-get install"
}
cd /

# The layout.
getent group lvs >/dev/null || fail "no group lvs"
[ "$(id -gn lvs)" = lvs ] || fail "no system user lvs in the group lvs"
[ "$(stat -c '%U:%G %a' /run/lvs)" = "root:lvs 750" ] ||
    fail "/run/lvs is $(stat -c '%U:%G %a' /run/lvs), not root:lvs 750"
for f in /usr/sbin/lvs-director /usr/sbin/lvsadm /usr/sbin/lvsadm-save /usr/sbin/lvsadm-restore \
    /usr/sbin/lvs-monitord /usr/sbin/lvs-heartbeatd /usr/sbin/lvs-lockmgr /usr/bin/lvs-lockctl \
    /usr/sbin/lvs-webmon; do
    [ -x "$f" ] || fail "$f is missing"
done
for s in rr wrr lc wlc sh dh mh sed nq fo ovf twos; do
    [ -f "/usr/lib/lvs/sched/liblvs_sched_$s.so" ] || fail "scheduler $s is missing"
done
ls /usr/lib/*/liblvslock.so.0 >/dev/null || fail "liblvslock.so.0 is missing"
[ -f /usr/include/lvs_sched.h ] && [ -f /usr/include/lvs_lock.h ] || fail "a header is missing"
for m in man8/lvsadm.8 man8/lvsadm-save.8 man8/lvsadm-restore.8 man8/lvs-director.8 \
    man8/lvs-monitord.8 man8/lvs-heartbeatd.8 man8/lvs-lockmgr.8 man8/lvs-webmon.8 \
    man1/lvs-lockctl.1 man5/lvs-director.toml.5 man5/lvs-monitord.toml.5 \
    man5/lvs-heartbeatd.toml.5 man5/lvs-lockmgr.toml.5 man5/lvs-webmon.toml.5; do
    [ -f "/usr/share/man/$m.gz" ] || fail "man page $m is missing"
done
[ -f /usr/share/bash-completion/completions/lvsadm ] || fail "lvsadm's bash completion is missing"
for d in $DAEMONS; do
    dpkg-query -W -f='${Conffiles}\n' "lvs-$d" | grep -q " /etc/lvs/$d.toml " ||
        fail "/etc/lvs/$d.toml is not a conffile of lvs-$d"
    dpkg-query -W -f='${Conffiles}\n' "lvs-$d" | grep -q " /etc/default/lvs-$d " ||
        fail "/etc/default/lvs-$d is not a conffile of lvs-$d"
    [ -x "/etc/init.d/lvs-$d" ] || fail "/etc/init.d/lvs-$d is missing"
    [ -f "/lib/systemd/system/lvs-$d.service" ] || [ -f "/usr/lib/systemd/system/lvs-$d.service" ] ||
        fail "lvs-$d.service is missing"
done
say "layout: user and group lvs, /run/lvs root:lvs 750, binaries, plugins, headers, man pages, conffiles, units, init scripts"

# The key files, as README and the samples say.
head -c 32 /dev/urandom >/etc/lvs/heartbeat.key
chmod 600 /etc/lvs/heartbeat.key

for d in $DAEMONS; do
    out=$("lvs-$d" --check-config -c "/etc/lvs/$d.toml" 2>&1) || fail "lvs-$d --check-config: $out"
    say "$out"
done

# heartbeatd's sample also names a serial line (/dev/ttyS0), which this root has not: the
# daemon is started on the same file without its [serial] table.
sed '/^\[serial\]/,/^\[/{/^\[serial\]/d;/^\[/!d}' /etc/lvs/heartbeatd.toml >/etc/lvs/heartbeatd-test.toml
echo 'CONFIG=/etc/lvs/heartbeatd-test.toml' >>/etc/default/lvs-heartbeatd
lvs-heartbeatd --check-config -c /etc/lvs/heartbeatd-test.toml >/dev/null

# As after a reboot without systemd: /run/lvs is gone and no tmpfiles.d runs. The init
# scripts make it again, root:lvs 750, before the first daemon makes it root's alone.
rm -rf /run/lvs
for d in $DAEMONS; do
    "/etc/init.d/lvs-$d" start || fail "/etc/init.d/lvs-$d start"
done
[ "$(stat -c '%U:%G %a' /run/lvs)" = "root:lvs 750" ] ||
    fail "after the init scripts /run/lvs is $(stat -c '%U:%G %a' /run/lvs), not root:lvs 750"
for d in $DAEMONS; do
    "/etc/init.d/lvs-$d" status >/dev/null || fail "/etc/init.d/lvs-$d status: not running"
done
say "started: $DAEMONS"

out=$(lvsadm -L -n 2>&1) || fail "lvsadm -L -n: $out"
echo "$out" | head -1 | grep -q '^IP Virtual Server version' || fail "lvsadm -L -n printed: $out"
say "lvsadm -L -n answers: $(echo "$out" | head -1)"
[ "$(stat -c '%G %a' /run/lvs/director.sock)" = "lvs 660" ] ||
    fail "director.sock is $(stat -c '%G %a' /run/lvs/director.sock), not group lvs 660"
[ "$(stat -c '%G %a' /run/lvs/lockmgr.sock)" = "lvs 660" ] ||
    fail "lockmgr.sock is $(stat -c '%G %a' /run/lvs/lockmgr.sock), not group lvs 660"
out=$(lvs-lockctl status 2>&1) || fail "lvs-lockctl status: $out"
say "lvs-lockctl status answers; sockets root:lvs 660"

# The director's package upgrade (docs/UPGRADE.md), where the director can hand over: dpkg
# installs lvs-director again over the running one (the maintainer scripts run as for an
# upgrade from the same version, and the binary is a new file), invoke-rc.d may run only
# `lvs-director upgrade`; the director must keep its process, run the new file and still have
# the service made before.
if lvs-director --help | grep -q -- '--upgrade'; then
    lvsadm -A -t 192.0.2.10:80 -s rr
    pid=$(cat /run/lvs/director.pid)
    printf '#!/bin/sh\n[ "$1 $2" = "lvs-director upgrade" ] && exit 0\nexit 101\n' >/usr/sbin/policy-rc.d
    dpkg -i /tmp/debs/lvs-director_*.deb >/tmp/dpkg.log 2>&1 || {
        cat /tmp/dpkg.log >&2
        fail "dpkg -i lvs-director (upgrade)"
    }
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    grep -q 'Upgrading LVS director' /tmp/dpkg.log || {
        cat /tmp/dpkg.log >&2
        fail "the upgrade did not run /etc/init.d/lvs-director upgrade"
    }
    [ "$(cat /run/lvs/director.pid)" = "$pid" ] || fail "the upgrade changed the director's pid"
    [ "$(readlink "/proc/$pid/exe")" = /usr/sbin/lvs-director ] ||
        fail "the director runs $(readlink "/proc/$pid/exe") after the upgrade, not the new file"
    lvsadm -L -n | grep -q '^TCP  192.0.2.10:80 rr' || fail "the service did not survive the upgrade"
    lvsadm -D -t 192.0.2.10:80
    say "upgrade: the director (pid $pid) handed over to the new binary, its service kept"
else
    say "upgrade: this lvs-director cannot hand over (no --upgrade): not tested"
fi

for d in webmon heartbeatd monitord lockmgr director; do
    "/etc/init.d/lvs-$d" stop || fail "/etc/init.d/lvs-$d stop"
    rc=0
    "/etc/init.d/lvs-$d" status >/dev/null || rc=$?
    [ "$rc" -eq 3 ] || fail "/etc/init.d/lvs-$d status after stop: $rc, not 3"
done
say "stopped"

# What the administrator made is the administrator's to remove; the purge removes the rest.
rm -f /etc/lvs/heartbeat.key /etc/lvs/heartbeatd-test.toml
apt-get purge -y -q $(dpkg-query -W -f='${Package}\n' 'lvs-*') >/tmp/apt.log 2>&1 || {
    cat /tmp/apt.log >&2
    fail "apt-get purge"
}
dpkg-query -W -f='${Package} ${Status}\n' 'lvs-*' 2>/dev/null | grep -v 'not-installed' | grep . &&
    fail "packages left after the purge"
say "purged"
