#!/bin/sh
# Builds every man page of lvs-rs into OUTDIR (debian/rules runs it; so can you):
#
#     sh doc/man/build.sh target/release OUTDIR
#
# - the daemons and lvs-lockctl: help2man from their own --help and --version (clap), so the
#   options on the page are the options the binary takes; doc/man/<binary>.h2m adds the
#   sections --help has no room for (FILES, SIGNALS, EXAMPLES, SEE ALSO);
# - lvsadm, lvsadm-save, lvsadm-restore: hand-written roff (lvsadm parses its command line
#   itself, in ipvsadm's syntax, and its page follows ipvsadm(8));
# - the configuration files: doc/man/lvs-<daemon>.toml.5.in, whose KEYS section is the
#   annotated sample etc/lvs-<daemon>.toml that the package installs, so the page documents
#   exactly the file that ships (every key, its default and what it does).
set -eu
bindir=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
etc=$here/../../etc
mkdir -p "$out"

# One-line descriptions, the NAME line of each page.
describe() {
    case $1 in
        lvs-director) echo "the lvs-rs load balancer (VS/NAT, VS/DR, VS/TUN, layer 7)" ;;
        lvs-monitord) echo "the lvs-rs real server monitor" ;;
        lvs-heartbeatd) echo "the lvs-rs failover daemon (heartbeats, virtual addresses)" ;;
        lvs-lockmgr) echo "the lvs-rs distributed lock manager" ;;
        lvs-webmon) echo "the lvs-rs web console" ;;
        lvs-lockctl) echo "take lvs-lockmgr locks from the shell" ;;
    esac
}

for b in lvs-director lvs-monitord lvs-heartbeatd lvs-lockmgr lvs-webmon lvs-lockctl; do
    section=8
    [ "$b" = lvs-lockctl ] && section=1
    include=$(mktemp)
    cat "$here/$b.h2m" >"$include"
    # Subcommands: their own --help, one subsection each.
    subs=
    case $b in
        lvs-lockctl) subs=$("$bindir/$b" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { if ($1 != "help") print $1 } on && /^$/ { exit }') ;;
        lvs-monitord) subs="ctl
ctl list
ctl maintenance" ;;
    esac
    if [ -n "$subs" ]; then
        printf '[COMMANDS]\n' >>"$include"
        echo "$subs" | while IFS= read -r s; do
            printf '.SS "%s %s"\n.nf\n' "$b" "$s" >>"$include"
            # shellcheck disable=SC2086 # "ctl list": two words
            "$bindir/$b" $s --help | sed -e 's/\\/\\e/g' -e 's/^[.'\'']/\\\&&/' >>"$include"
            printf '.fi\n' >>"$include"
        done
    fi
    help2man --no-info --section="$section" --source=lvs-rs \
        --manual="$([ "$section" = 8 ] && echo 'System Administration' || echo 'User Commands')" \
        --name="$(describe "$b")" --include="$include" \
        --output="$out/$b.$section" "$bindir/$b"
    rm -f "$include"
done

cp "$here/lvsadm.8" "$here/lvsadm-save.8" "$here/lvsadm-restore.8" "$out/"

# The annotated sample as roff: literal lines, escapes and leading dots made harmless.
sample() {
    printf '.nf\n'
    sed -e 's/\\/\\e/g' -e 's/^[.'\'']/\\\&&/' "$1"
    printf '.fi\n'
}
for d in director monitord heartbeatd lockmgr webmon; do
    page=$out/lvs-$d.toml.5
    : >"$page"
    while IFS= read -r line; do
        if [ "$line" = @KEYS@ ]; then
            printf '.SH KEYS\nThe annotated sample file: every key, its default and what it does.\n.PP\n' >>"$page"
            sample "$etc/lvs-$d.toml" >>"$page"
            if [ "$d" = lockmgr ]; then
                printf '.SS "A cluster of three nodes"\n' >>"$page"
                sample "$etc/lvs-lockmgr-cluster.toml" >>"$page"
            fi
        else
            printf '%s\n' "$line" >>"$page"
        fi
    done <"$here/lvs-$d.toml.5.in"
done
