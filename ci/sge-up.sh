#!/usr/bin/env bash
# Bring up a one-node Son of Grid Engine 8.1.9 on this machine for hpcdask's
# tests (see /work/shared/DESIGN.md, "Son of Grid Engine", and ci/SGE-NOTES.md).
#
# Run as root. Nothing is installed system-wide: Debian's gridengine packages
# conflict with slurm-wlm-torque (both own /usr/bin/qsub), so they are fetched
# with `apt-get download` and unpacked with `dpkg -x` into a private SGE_ROOT
# ($HPCDASK_SGE_ROOT, default /opt/hpcdask-sge). SGE's commands are reachable
# only after `. $SGE_ROOT/default/common/settings.sh` (or an explicit PATH):
# plain `qsub` stays Slurm's Torque wrapper.
#
#   - unpacks the binaries into $SGE_ROOT/{bin,utilbin}/lx-amd64 and the
#     spooling libraries and libjemalloc into $SGE_ROOT/lib/lx-amd64 (plus any
#     other shared library the binaries need that this machine lacks); patches
#     the spooling-library path compiled into the binaries (/usr/lib/gridengine/
#     %s%s becomes %s%s, found through the binaries' RUNPATH);
#   - cell `default`, classic spooling under $SGE_ROOT/default, admin user root,
#     qmaster port $HPCDASK_SGE_QMASTER_PORT (6444), execd port
#     $HPCDASK_SGE_EXECD_PORT (6445); host_aliases maps `localhost` to this host
#     (its name resolves to 127.0.0.1, which reverse-resolves to localhost);
#   - global configuration: min_uid/min_gid 0 (root's jobs run), login_shells
#     none, accounting on and flushed at once (qacct), no mail (a mailer
#     that reads and drops the message, administrator_mail none);
#   - scheduler: schedule_interval 0:0:1, flush_submit_sec 1, flush_finish_sec 1,
#     schedd_job_info true;
#   - one execution host (this one) in @allhosts; queues
#       all.q   $HPCDASK_SGE_SLOTS (16) slots, pe_list smp, no load thresholds
#               (other tests load the 2 cores), SGE's template shell /bin/sh
#               with posix_compliant (a script's #! line is ignored: use -S);
#               a job's `-l h_rt=` is enforced (the job is killed);
#       down.q  the same host, 16 slots, DISABLED: a job sent there with
#               `-q down.q` stays pending (qw), like Slurm's `down` partition;
#     parallel environment smp (999 slots, allocation_rule $pe_slots) for
#     `-pe smp N` (the job sees NSLOTS=N); project hpcdask (`-P hpcdask`);
#   - starts sge_qmaster and sge_execd (they daemonize), each in a session of
#     its own with a small fixed environment, and waits until all.q@HOST takes
#     jobs (an execd found running in another program's session is restarted
#     in its own: it would die with that session);
#   - force-deletes jobs that were being deleted (`dr`, `dt`) when their execd
#     died: their owner asked for the deletion, no execd will ever confirm it.
# Idempotent: a rerun with SGE up compares every setting with what qconf shows,
# changes only what differs (normally nothing) and restarts nothing.
# Writes SGE's own settings file $SGE_ROOT/default/common/settings.sh and prints
# one summary line. Undo with ci/sge-down.sh.
set -euo pipefail

SGE_ROOT="${HPCDASK_SGE_ROOT:-/opt/hpcdask-sge}"
SGE_CELL=default
QMASTER_PORT="${HPCDASK_SGE_QMASTER_PORT:-6444}"
EXECD_PORT="${HPCDASK_SGE_EXECD_PORT:-6445}"
SLOTS="${HPCDASK_SGE_SLOTS:-16}"
WAIT_SECONDS="${HPCDASK_SGE_WAIT:-60}"
ARCH=lx-amd64
WANT_VERSION=8.1.9
PACKAGES=(gridengine-common gridengine-client gridengine-master gridengine-exec libjemalloc2)

B="$SGE_ROOT/bin/$ARCH"
U="$SGE_ROOT/utilbin/$ARCH"
L="$SGE_ROOT/lib/$ARCH"
COMMON="$SGE_ROOT/$SGE_CELL/common"
SPOOL="$SGE_ROOT/$SGE_CELL/spool"
QMDIR="$SPOOL/qmaster"
INSTALLED="$SGE_ROOT/.hpcdask-installed"     # binaries unpacked and patched
INITIALIZED="$SGE_ROOT/.hpcdask-initialized" # cell bootstrapped (spool created)
MAILER="$SGE_ROOT/util/hpcdask-mailer"        # reads the message, sends nothing

log() { echo "sge-up: $*" >&2; }
die() {
    log "ERROR: $*"
    local f
    # qmaster's and execd's logs (execd's spool directory is named after its
    # unaliased host name, `localhost` here), and what a daemon that died
    # before it could log there left in /tmp
    for f in "$SPOOL"/*/messages \
        $(ls -t /tmp/qmaster_messages.* /tmp/execd_messages.* 2>/dev/null | head -n 2); do
        if [ -f "$f" ]; then
            echo "----- tail $f -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

[ "$(id -u)" -eq 0 ] || { echo "sge-up: must run as root" >&2; exit 1; }
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
# SGE's commands below are called by full path with this environment; the
# caller's PATH is left alone.
export SGE_ROOT SGE_CELL SGE_QMASTER_PORT="$QMASTER_PORT" SGE_EXECD_PORT="$EXECD_PORT"
unset SGE_ARCH SGE_CLUSTER_NAME SGE_DEBUG_LEVEL

TMP="$(mktemp -d /tmp/sge-up.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT

# ------------------------------------------------------------- packages
# fetch PACKAGE... into $TMP/debs (apt-get update once when the lists are stale)
fetch() {
    mkdir -p "$TMP/debs"
    if ! (cd "$TMP/debs" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null 2>"$TMP/apt.err"); then
        log "apt-get download failed ($(tail -n 1 "$TMP/apt.err")): running apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null \
            || die "apt-get update failed"
        (cd "$TMP/debs" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null) \
            || die "apt-get download $* failed"
    fi
}

# shared libraries an ELF file cannot find (with its own RUNPATH)
missing_libs() { ldd "$1" 2>/dev/null | awk '/=> not found/ {print $1}'; }

install_binaries() {
    log "unpacking Son of Grid Engine ${WANT_VERSION} into $SGE_ROOT"
    fetch "${PACKAGES[@]}"
    local x="$TMP/x" d f name
    mkdir -p "$x"
    for d in "$TMP"/debs/*.deb; do dpkg -x "$d" "$x"; done
    local ver
    ver="$(dpkg-deb -f "$TMP"/debs/gridengine-master_*.deb Version)"
    case "$ver" in
        "$WANT_VERSION"*) ;;
        *) die "gridengine-master is version $ver, expected $WANT_VERSION" ;;
    esac

    rm -rf "$SGE_ROOT/bin" "$SGE_ROOT/utilbin" "$SGE_ROOT/lib" "$SGE_ROOT/util" "$SGE_ROOT/man"
    mkdir -p "$B" "$U" "$L"
    # bin: the user commands and the daemons; utilbin: the helpers
    for f in "$x"/usr/lib/gridengine/*; do
        name="$(basename "$f")"
        case "$name" in
            lib*.so) cp -a "$f" "$L/" ;;
            spooldefaults|spooledit) ;;   # Debian's wrappers around the .bin
            spooldefaults.bin|spooledit.bin) cp -a "$f" "$U/${name%.bin}" ;;
            db_dump|db_load) ;;           # links to Berkeley DB tools (not used)
            qrsh_starter) cp -a "$f" "$U/" ;;
            q*|sge_*) cp -a "$f" "$B/" ;;
            *) cp -a "$f" "$U/" ;;
        esac
    done
    cp -a "$x"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 "$L/"
    cp -a "$x"/usr/share/gridengine/util "$SGE_ROOT/util"
    cp -a "$x"/usr/share/gridengine/default-configuration "$SGE_ROOT/util/"
    cp -a "$x"/usr/share/man "$SGE_ROOT/man"

    # The spooling library is loaded from a path compiled in as
    # "/usr/lib/gridengine/%s%s"; make it the bare "%s%s" (same length, padded
    # with NULs) so the dynamic loader finds it through RUNPATH $ORIGIN/../../lib/lx-amd64.
    for f in "$B/sge_qmaster" "$U/spoolinit" "$U/spooldefaults" "$U/spooledit"; do
        perl -0777 -pi -e 's{/usr/lib/gridengine/(%s%s\0)}{$1 . ("\0" x 20)}ge' "$f"
        if grep -q -a '/usr/lib/gridengine/%s%s' "$f"; then
            die "could not patch the spooling-library path in $f"
        fi
    done

    # Shared libraries this machine lacks (a fresh Debian 12 has no libhwloc15,
    # libmunge2, ...): unpack their packages into lib/ too, not system-wide.
    local libs=() pkgs=() lib
    for f in "$B"/* "$U"/* "$L"/*.so; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        head -c 4 "$f" | grep -q 'ELF' || continue
        while read -r lib; do libs+=("$lib"); done < <(missing_libs "$f")
    done
    if [ "${#libs[@]}" -gt 0 ]; then
        for lib in $(printf '%s\n' "${libs[@]}" | sort -u); do
            case "$lib" in
                libhwloc.so.15) pkgs+=(libhwloc15) ;;
                libmunge.so.2) pkgs+=(libmunge2) ;;
                libdb-5.3.so) pkgs+=(libdb5.3) ;;
                libtirpc.so.3) pkgs+=(libtirpc3 libtirpc-common) ;;
                libudev.so.1) pkgs+=(libudev1) ;;
                *) die "shared library $lib is missing and its package is unknown" ;;
            esac
        done
        log "unpacking missing libraries from ${pkgs[*]} into $L"
        rm -rf "$TMP/debs" "$TMP/y"
        fetch "${pkgs[@]}"
        mkdir -p "$TMP/y"
        for d in "$TMP"/debs/*.deb; do dpkg -x "$d" "$TMP/y"; done
        find "$TMP/y" -name '*.so*' \( -type f -o -type l \) -exec cp -a {} "$L/" \;
        for f in "$B"/* "$U"/*; do
            [ -f "$f" ] && [ ! -L "$f" ] || continue
            head -c 4 "$f" | grep -q 'ELF' || continue
            lib="$(missing_libs "$f" | head -n 1)"
            [ -z "$lib" ] || die "$f still cannot find $lib"
        done
    fi
    echo "gridengine $ver" >"$INSTALLED"
}

if [ ! -f "$INSTALLED" ] || [ ! -x "$B/sge_qmaster" ]; then
    install_binaries
fi


# ----------------------------------------------------------------- host
# SGE's own idea of this host's name, and the name its address resolves back
# to: here `vm` -> 127.0.0.1 -> `localhost`, so qmaster would refuse clients
# ("client IP resolved to host name localhost") unless host_aliases maps it.
HOST="$("$U/gethostname" -name)" || die "SGE's gethostname failed"
[ -n "$HOST" ] || die "SGE's gethostname printed no host name"
ADDR="$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')"
[ -n "$ADDR" ] || die "host name $HOST does not resolve to an IPv4 address"
BACK="$("$U/gethostbyaddr" -name "$ADDR" 2>/dev/null || true)"
ALIASES=""
if [ -n "$BACK" ] && [ "$BACK" != "$HOST" ]; then
    ALIASES="$HOST $BACK"
fi

# write FILE CONTENT: replace FILE only when its content differs; says whether it did
write_if_changed() {
    if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
        return 1
    fi
    printf '%s\n' "$2" >"$1.tmp.$$"
    chmod 0644 "$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
    return 0
}

# ---------------------------------------------------------------- daemons
# pid of a live process named NAME from PIDFILE (empty if none)
live_pid() {
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ] \
        && [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$B/$name" ] \
        && ! awk '{exit !($3 == "Z")}' "/proc/$pid/stat" 2>/dev/null; then
        echo "$pid"
    fi
}
qmaster_pid() { live_pid "$QMDIR/qmaster.pid" sge_qmaster; }
# execd names its spool directory after its unaliased host name (`localhost` here)
execd_pid() {
    local f pid
    for f in "$SPOOL"/*/execd.pid; do
        pid="$(live_pid "$f" sge_execd)"
        [ -z "$pid" ] || { echo "$pid"; return 0; }
    done
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_daemon NAME: start $B/NAME (it daemonizes) in a session of its own and
# a small fixed environment. sge_qmaster calls setsid() itself, sge_execd does
# not: started from a shell it stays in that shell's session, and when the
# session ends (a terminal closed, an engineer's or CI runner's session torn
# down, which kills the session's processes) execd dies with it, leaving its
# jobs stuck in `t`/`dr`/`dt`. Seen here: execd gone 35 s after the session
# that ran this script ended, qmaster (setsid) alive.
start_daemon() {
    local name=$1
    (cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        SGE_ROOT="$SGE_ROOT" SGE_CELL="$SGE_CELL" \
        SGE_QMASTER_PORT="$QMASTER_PORT" SGE_EXECD_PORT="$EXECD_PORT" \
        setsid -w "$B/$name" </dev/null >"$TMP/$name.out" 2>&1) \
        || die "$name failed to start: $(cat "$TMP/$name.out")"
}
# the leader of process $1's session, "pid (command)", when it is alive
session_leader() {
    local sid
    sid="$(awk '{print $6}' "/proc/$1/stat" 2>/dev/null || true)"
    [ -n "$sid" ] && [ -e "/proc/$sid" ] && echo "$sid ($(cat "/proc/$sid/comm" 2>/dev/null))"
    return 0
}
# whether process $1 shares a session with a live process that is not one of
# this SGE's daemons (so it dies when that session is torn down)
tied_to_a_session() {
    local sid
    sid="$(awk '{print $6}' "/proc/$1/stat" 2>/dev/null || true)"
    [ -n "$sid" ] && [ "$sid" != "$1" ] && [ -e "/proc/$sid" ] \
        && [[ "$(readlink "/proc/$sid/exe" 2>/dev/null || true)" != "$B/"* ]]
}

started=()
changed=()

# ---------------------------------------------------------------- the cell
CELL_FILES_CHANGED=0
CREATED=0
bootstrap_content="$(cat <<EOT
# Version: 8.1.9
# Written by hpcdask ci/sge-up.sh -- rerun it instead of editing.
admin_user              none
default_domain          none
ignore_fqdn             true
spooling_method         classic
spooling_lib            libspoolc
spooling_params         $COMMON;$QMDIR
binary_path             $SGE_ROOT/bin
qmaster_spool_dir       $QMDIR
security_mode           none
listener_threads        2
worker_threads          2
scheduler_threads       1
jvm_threads             0
EOT
)"

init_cell() {
    log "creating cell $SGE_CELL (classic spooling) in $SGE_ROOT/$SGE_CELL"
    [ -z "$(qmaster_pid)" ] || die "sge_qmaster runs from $SGE_ROOT but the cell is not initialized: run ci/sge-down.sh"
    rm -rf "${SGE_ROOT:?}/$SGE_CELL"
    mkdir -p "$COMMON" "$QMDIR" "$SPOOL"
    write_if_changed "$COMMON/bootstrap" "$bootstrap_content" || true
    write_if_changed "$COMMON/act_qmaster" "$HOST" || true
    write_if_changed "$COMMON/cluster_name" "p$QMASTER_PORT" || true
    write_if_changed "$COMMON/host_aliases" "$ALIASES" || true
    "$U/spoolinit" classic libspoolc "$COMMON;$QMDIR" init || die "spoolinit failed"
    # The package's default global configuration, with this site's changes
    # (checked again on every run below, through qconf).
    sed -e "s#^execd_spool_dir .*#execd_spool_dir        $SPOOL#" \
        -e "s#^mailer .*#mailer                 $MAILER#" \
        -e 's#^administrator_mail .*#administrator_mail     none#' \
        -e 's#^min_uid .*#min_uid                0#' \
        -e 's#^min_gid .*#min_gid                0#' \
        -e 's#^login_shells .*#login_shells           none#' \
        "$SGE_ROOT/util/default-configuration" >"$TMP/configuration"
    "$U/spooldefaults" configuration "$TMP/configuration" || die "spooldefaults configuration failed"
    # spooldefaults needs absolute template directories (a relative one is
    # silently ignored)
    "$U/spooldefaults" complexes "$SGE_ROOT/util/resources/centry" || die "spooldefaults complexes failed"
    "$U/spooldefaults" usersets "$SGE_ROOT/util/resources/usersets" || die "spooldefaults usersets failed"
    "$U/spooldefaults" managers root || die "spooldefaults managers failed"
    "$U/spooldefaults" operators root || die "spooldefaults operators failed"
    [ -f "$QMDIR/centry/h_rt" ] || die "complexes were not spooled (no centry/h_rt)"
    touch "$INITIALIZED"
    CELL_FILES_CHANGED=1
    CREATED=1
}
# No mail leaves this machine. SGE's mailer is run with the message on its
# stdin by a forked copy of the daemon; /bin/true (used before) exits without
# reading it, and the copy then logs "can't close file <pipefds>: Broken pipe"
# and "mailer exited with exit status = 1" (harmless, but it reads like the
# cause of a crash). This one reads and drops the message. administrator_mail
# none: no mail to root for every job that goes into error (Eqw).
mkdir -p "$SGE_ROOT/util"
write_if_changed "$MAILER" '#!/bin/sh
# SGE mailer of the hpcdask test site (ci/sge-up.sh): reads the message, sends nothing
exec cat >/dev/null' || true
chmod 0755 "$MAILER"
[ -f "$INITIALIZED" ] || init_cell

write_if_changed "$COMMON/bootstrap" "$bootstrap_content" && CELL_FILES_CHANGED=1
write_if_changed "$COMMON/act_qmaster" "$HOST" && CELL_FILES_CHANGED=1
write_if_changed "$COMMON/host_aliases" "$ALIASES" && CELL_FILES_CHANGED=1

# SGE's own settings files (settings.sh, settings.csh, sge.module) from its
# util/create_settings.sh, replaced only when their content changes
mkdir -p "$TMP/settings"
(cd "$SGE_ROOT" && SGE_ARCH="$ARCH" sh util/create_settings.sh "$TMP/settings") >/dev/null \
    || die "util/create_settings.sh failed"
for f in settings.sh settings.csh sge.module; do
    write_if_changed "$COMMON/$f" "$(cat "$TMP/settings/$f")" && changed+=("$f")
done

if [ "$CELL_FILES_CHANGED" -eq 1 ] && [ -n "$(qmaster_pid)$(execd_pid)" ]; then
    die "bootstrap, act_qmaster or host_aliases changed under running daemons: run ci/sge-down.sh, then this script"
fi

Q="$B/qconf"
qmaster_answers() { "$Q" -sh >/dev/null 2>&1; }

if [ -z "$(qmaster_pid)" ]; then
    if port_busy "$QMASTER_PORT"; then
        die "port $QMASTER_PORT is taken by another program (set HPCDASK_SGE_QMASTER_PORT)"
    fi
    log "starting sge_qmaster"
    start_daemon sge_qmaster
    started+=(qmaster)
    for _ in $(seq 100); do [ -z "$(qmaster_pid)" ] || break; sleep 0.1; done
    [ -n "$(qmaster_pid)" ] || die "sge_qmaster did not start (no live pid in $QMDIR/qmaster.pid)"
fi
deadline=$((SECONDS + WAIT_SECONDS))
until qmaster_answers; do
    [ "$SECONDS" -lt "$deadline" ] || die "sge_qmaster does not answer 'qconf -sh' after ${WAIT_SECONDS}s"
    [ -n "$(qmaster_pid)" ] || die "sge_qmaster exited"
    sleep 0.1
done

# ------------------------------------------------------------ configuration
# norm: qconf's "key value" listings with continuation lines joined, spaces
# squeezed and comments dropped
norm() {
    awk '{ if (sub(/\\[ \t]*$/, "")) { buf = buf $0 " "; next }
           $0 = buf $0; buf = ""; if (NF && $1 !~ /^#/) { $1 = $1; print } }'
}
# keys_of TEXT: the first words of its lines
keys_of() { printf '%s\n' "$1" | awk '{print $1}'; }
# pick TEXT KEYS: TEXT's lines whose key is one of KEYS, in KEYS' order
pick() {
    printf '%s\n' "$1" | awk -v keys="$2" '
        BEGIN { n = split(keys, k, "\n") } { v[$1] = $0 }
        END { for (i = 1; i <= n; i++) if (k[i] in v) print v[k[i]] }'
}
# merge TEXT WANT: TEXT with the lines of WANT replacing those with the same key
merge() {
    printf '%s\n' "$1" | awk -v want="$2" '
        BEGIN { n = split(want, w, "\n"); for (i = 1; i <= n; i++) { split(w[i], f, " "); r[f[1]] = w[i] } }
        { if ($1 in r) { print r[$1]; done[$1] = 1 } else print }
        END { for (i = 1; i <= n; i++) { split(w[i], f, " "); if (!(f[1] in done)) print w[i] } }'
}

# set_keys WHAT FILENAME SHOW-ARGS MODIFY-OPT WANT: make the keys in WANT
# (normalized "key value" lines) hold those values in a configuration that
# qconf shows whole and modifies from a whole file (global conf, scheduler)
set_keys() {
    local what=$1 fname=$2 show=$3 modify=$4 want cur
    want="$(printf '%s\n' "$5" | norm)"
    # shellcheck disable=SC2086
    cur="$("$Q" $show | norm)" || die "qconf $show failed"
    if [ "$(pick "$cur" "$(keys_of "$want")")" != "$want" ]; then
        mkdir -p "$TMP/conf"
        merge "$cur" "$want" >"$TMP/conf/$fname"
        "$Q" "$modify" "$TMP/conf/$fname" >"$TMP/qconf.out" 2>&1 \
            || die "qconf $modify for $what failed: $(cat "$TMP/qconf.out")"
        cur="$("$Q" $show | norm)"
        [ "$(pick "$cur" "$(keys_of "$want")")" = "$want" ] \
            || die "$what still differs after qconf $modify: $(pick "$cur" "$(keys_of "$want")")"
        changed+=("$what")
    fi
}

# ensure WHAT SHOW-OPT NAME ADD-OPT MODIFY-OPT WANT: an object (queue, PE,
# host group, exec host) created from WANT, or modified when one of WANT's
# keys shows another value
ensure() {
    local what=$1 show=$2 name=$3 add=$4 modify=$5 want cur
    want="$(printf '%s\n' "$6" | norm)"
    mkdir -p "$TMP/obj"
    printf '%s\n' "$want" >"$TMP/obj/$name"
    if ! cur="$("$Q" "$show" "$name" 2>/dev/null | norm)" || [ -z "$cur" ]; then
        "$Q" "$add" "$TMP/obj/$name" >"$TMP/qconf.out" 2>&1 \
            || die "qconf $add for $what failed: $(cat "$TMP/qconf.out")"
        changed+=("$what")
    elif [ "$(pick "$cur" "$(keys_of "$want")")" != "$want" ]; then
        "$Q" "$modify" "$TMP/obj/$name" >"$TMP/qconf.out" 2>&1 \
            || die "qconf $modify for $what failed: $(cat "$TMP/qconf.out")"
        changed+=("$what")
    else
        return 0
    fi
    cur="$("$Q" "$show" "$name" | norm)"
    [ "$(pick "$cur" "$(keys_of "$want")")" = "$want" ] \
        || die "$what differs from what was set: $(diff <(pick "$cur" "$(keys_of "$want")") <(printf '%s\n' "$want") || true)"
}

set_keys "global configuration" global "-sconf global" -Mconf "
execd_spool_dir $SPOOL
mailer $MAILER
administrator_mail none
min_uid 0
min_gid 0
login_shells none
reporting_params accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00
"
set_keys "scheduler configuration" sched_configuration -ssconf -Msconf "
schedule_interval 0:0:1
flush_submit_sec 1
flush_finish_sec 1
schedd_job_info true
"

# this host as admin host (qmaster adds its own host) and submit host
# (lists read whole first: `qconf | grep -q` can fail on SIGPIPE under pipefail)
if ! grep -qx "$HOST" <<<"$("$Q" -sh 2>/dev/null || true)"; then
    "$Q" -ah "$HOST" >"$TMP/qconf.out" 2>&1 || die "qconf -ah $HOST failed: $(cat "$TMP/qconf.out")"
    changed+=("admin host")
fi
if ! grep -qx "$HOST" <<<"$("$Q" -ss 2>/dev/null || true)"; then
    "$Q" -as "$HOST" >"$TMP/qconf.out" 2>&1 || die "qconf -as $HOST failed: $(cat "$TMP/qconf.out")"
    changed+=("submit host")
fi

ensure "exec host $HOST" -se "$HOST" -Ae -Me "
hostname $HOST
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
"
ensure "host group @allhosts" -shgrp @allhosts -Ahgrp -Mhgrp "
group_name @allhosts
hostlist $HOST
"
ensure "parallel environment smp" -sp smp -Ap -Mp '
pe_name smp
slots 999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $pe_slots
control_slaves FALSE
job_is_first_task TRUE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
'
# a project for `qsub -P hpcdask` (SGECluster's `project`): SGE refuses a job
# that names a project it does not know
ensure "project hpcdask" -sprj hpcdask -Aprj -Mprj "
name hpcdask
oticket 0
fshare 0
acl NONE
xacl NONE
"
# A queue as SGE 8.1.9's template makes it (shell /bin/sh, posix_compliant:
# the script's #! line is ignored unless `-S` is given), with this host, no
# load thresholds (other tests load the 2 cores), the smp PE and SLOTS slots.
queue_conf() {   # queue_conf NAME INITIAL_STATE
    cat <<EOT
qname $1
hostlist @allhosts
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp
rerun FALSE
slots $SLOTS
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode posix_compliant
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state $2
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
EOT
}
ensure "queue all.q" -sq all.q -Aq -Mq "$(queue_conf all.q default)"
ensure "queue down.q" -sq down.q -Aq -Mq "$(queue_conf down.q disabled)"

# ------------------------------------------------------------------ execd
# An execd left in someone's session (started by an older sge-up.sh, or by
# hand) dies when that session ends: restart it in its own. `qconf -ke` stops
# execd alone; the jobs' shepherds live on and the new execd adopts them.
pid="$(execd_pid)"
if [ -n "$pid" ] && tied_to_a_session "$pid"; then
    log "sge_execd (pid $pid) runs in the session of $(session_leader "$pid"): restarting it in a session of its own"
    "$B/qconf" -ke "$HOST" >"$TMP/qconf.out" 2>&1 || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        sleep 1
    fi
    changed+=("execd moved to its own session")
fi
if [ -z "$(execd_pid)" ]; then
    if port_busy "$EXECD_PORT"; then
        die "port $EXECD_PORT is taken by another program (set HPCDASK_SGE_EXECD_PORT)"
    fi
    log "starting sge_execd"
    start_daemon sge_execd
    started+=(execd)
    # it writes its pid file a moment after it daemonizes
    for _ in $(seq 100); do [ -z "$(execd_pid)" ] || break; sleep 0.1; done
    [ -n "$(execd_pid)" ] || die "sge_execd did not start (no live pid in $SPOOL/*/execd.pid)"
fi

# queue instance states: all.q@HOST usable (not unknown, disabled, in error),
# down.q@HOST disabled
qs() { "$B/qselect" -q "$1@$HOST" -qs "$2" 2>/dev/null || true; }
deadline=$((SECONDS + WAIT_SECONDS))
while [ -n "$(qs all.q u)" ] || [ -z "$("$B/qselect" -q "all.q@$HOST" 2>/dev/null || true)" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "all.q@$HOST still unknown (execd not registered) after ${WAIT_SECONDS}s"
    [ -n "$(execd_pid)" ] || die "sge_execd exited"
    sleep 0.1
done
# (qmod's exit code is not to be trusted: `qmod -cj` exits 1 when it worked;
# the states are checked instead)
if [ -n "$(qs all.q d)" ]; then
    "$B/qmod" -e "all.q@$HOST" >"$TMP/qmod.out" 2>&1 || true
    [ -z "$(qs all.q d)" ] || die "all.q@$HOST stays disabled: $(cat "$TMP/qmod.out")"
    changed+=("all.q enabled")
fi
if [ -n "$(qs all.q E)" ]; then
    "$B/qmod" -c "all.q@$HOST" >"$TMP/qmod.out" 2>&1 || true
    [ -z "$(qs all.q E)" ] || die "all.q@$HOST stays in error state E: $(cat "$TMP/qmod.out")"
    changed+=("all.q error cleared")
fi
if [ -z "$(qs down.q d)" ]; then
    "$B/qmod" -d "down.q@$HOST" >"$TMP/qmod.out" 2>&1 || true
    [ -n "$(qs down.q d)" ] || die "down.q@$HOST is not disabled: $(cat "$TMP/qmod.out")"
    changed+=("down.q disabled")
fi

# ------------------------------------------------------- orphaned deletions
# Jobs being deleted (`dr`, `dt`) when their execd died stay so for good: only
# an execd confirms a deletion. After a new execd started, give it a few
# seconds to settle the deletions it can (it adopts its jobs' spool), then
# force the rest; their owners asked for the deletion.
deleting() { "$B/qstat" -u '*' 2>/dev/null | awk 'NR > 2 && $5 ~ /d/ {print $1}' | sort -u; }
if [[ " ${started[*]} " == *" execd "* ]] && [ -n "$(deleting)" ]; then
    for _ in $(seq 50); do [ -n "$(deleting)" ] || break; sleep 0.2; done
    orphans="$(deleting | tr '\n' ' ')"
    if [ -n "${orphans// /}" ]; then
        log "force-deleting jobs whose deletion the dead execd never confirmed: $orphans"
        # shellcheck disable=SC2086
        "$B/qdel" -f $orphans >"$TMP/qdel.out" 2>&1 || true
        changed+=("force-deleted $orphans")
    fi
fi

# ------------------------------------------------------------------ check
version="$("$B/qsub" -help 2>/dev/null | head -n 1 || true)"
case "$version" in
    "SGE $WANT_VERSION"*) ;;
    *) die "qsub -help says '${version:-nothing}', expected SGE $WANT_VERSION" ;;
esac

extra=""
[ "$CREATED" -eq 0 ] || extra=" (new cell)"
[ "${#started[@]}" -eq 0 ] || extra="$extra (started: ${started[*]})"
if [ "$CREATED" -eq 0 ] && [ "${#changed[@]}" -gt 0 ]; then
    extra="$extra (changed: $(IFS=,; echo "${changed[*]}"))"
fi
echo "sge up: $version, host $HOST, all.q $SLOTS slots + pe smp, project hpcdask, down.q disabled; . $COMMON/settings.sh$extra"
