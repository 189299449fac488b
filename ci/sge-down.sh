#!/usr/bin/env bash
# Take down the one-node Son of Grid Engine of ci/sge-up.sh and remove it.
#
# Run as root. Idempotent (nothing up, nothing there: does nothing).
#   - stops sge_execd with its jobs (`qconf -kej`, ~1.5 s), then sge_qmaster
#     (`qconf -km`). qmaster's controlled shutdown takes ~8 s of waiting; as its
#     spool is deleted right after, it gets $HPCDASK_SGE_QMASTER_GRACE (2) s and
#     then SIGKILL. A daemon that does not answer is killed by pid the same way;
#   - kills, by pid, anything still left from this SGE_ROOT: processes whose
#     executable lies under it (sge_shepherd, ...) and jobs whose environment
#     names its spool (SGE_JOB_SPOOL_DIR=$SGE_ROOT/...);
#   - deletes $SGE_ROOT ($HPCDASK_SGE_ROOT, default /opt/hpcdask-sge): the
#     binaries, the cell, the spool, the accounting file, settings.sh.
# sge-up.sh made no other change to the machine (no package installed, no
# file outside SGE_ROOT, no service, no /etc edit), so nothing else is undone.
# Jobs' output files written elsewhere (-o/-e/-cwd) belong to their submitters
# and stay.
set -euo pipefail

SGE_ROOT="${HPCDASK_SGE_ROOT:-/opt/hpcdask-sge}"
SGE_CELL=default
ARCH=lx-amd64
B="$SGE_ROOT/bin/$ARCH"
SPOOL="$SGE_ROOT/$SGE_CELL/spool"
QMDIR="$SPOOL/qmaster"
GRACE="${HPCDASK_SGE_EXECD_GRACE:-15}"
QMASTER_GRACE="${HPCDASK_SGE_QMASTER_GRACE:-2}"

log() { echo "sge-down: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { echo "sge-down: must run as root" >&2; exit 1; }

case "$SGE_ROOT" in
    /|/usr|/usr/*|/etc|/etc/*|/var|/bin|/sbin|/lib|/root|/home|"")
        log "ERROR: refusing to remove SGE_ROOT=$SGE_ROOT"; exit 1 ;;
esac
if [ ! -e "$SGE_ROOT" ]; then
    echo "sge down: nothing at $SGE_ROOT"
    exit 0
fi
if [ ! -f "$SGE_ROOT/.hpcdask-installed" ] && [ -n "$(ls -A "$SGE_ROOT")" ]; then
    log "ERROR: $SGE_ROOT was not made by ci/sge-up.sh (no .hpcdask-installed): not touching it"
    exit 1
fi

if [ -f "$SGE_ROOT/$SGE_CELL/common/settings.sh" ]; then
    # SGE's settings.sh reads $MANPATH unguarded: not under `set -u`
    set +u
    # shellcheck disable=SC1091
    . "$SGE_ROOT/$SGE_CELL/common/settings.sh"
    set -u
fi
export SGE_ROOT SGE_CELL

# pids of live processes from this SGE_ROOT: daemons and helpers by their
# executable, jobs by the spool directory in their environment
ours() {
    local p exe
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        [ "$p" != "$$" ] && [ "$p" != "$BASHPID" ] || continue
        exe="$(readlink "/proc/$p/exe" 2>/dev/null || true)"
        if [[ "$exe" == "$SGE_ROOT/"* ]] \
            || grep -qaF "SGE_JOB_SPOOL_DIR=$SGE_ROOT/" "/proc/$p/environ" 2>/dev/null; then
            awk '$3 != "Z" {print $1}' "/proc/$p/stat" 2>/dev/null || true
        fi
    done
}
pid_of() {  # pid_of PIDFILE NAME: the live daemon NAME from this SGE_ROOT
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$B/$2" ] && echo "$pid" || true
}
wait_gone() {  # wait_gone SECONDS PID...: true when all are gone in time
    local t=$(($1 * 10)) p alive
    shift
    while :; do
        alive=0
        for p in "$@"; do
            if kill -0 "$p" 2>/dev/null && ! awk '{exit !($3 == "Z")}' "/proc/$p/stat" 2>/dev/null; then
                alive=1
            fi
        done
        [ "$alive" -eq 1 ] || return 0
        [ "$t" -gt 0 ] || return 1
        t=$((t - 1))
        sleep 0.1
    done
}

stopped=()
qm="$(pid_of "$QMDIR/qmaster.pid" sge_qmaster)"
ex=""
for f in "$SPOOL"/*/execd.pid; do
    [ -n "$ex" ] || ex="$(pid_of "$f" sge_execd)"
done

if [ -n "$ex" ]; then
    log "stopping sge_execd (pid $ex) and its jobs"
    if [ -n "$qm" ]; then
        "$B/qconf" -kej all >/dev/null 2>&1 || true
    fi
    if ! wait_gone "$GRACE" "$ex"; then
        log "sge_execd still there after ${GRACE}s: SIGTERM"
        kill "$ex" 2>/dev/null || true
        wait_gone 5 "$ex" || kill -9 "$ex" 2>/dev/null || true
    fi
    stopped+=(execd)
fi
if [ -n "$qm" ]; then
    log "stopping sge_qmaster (pid $qm)"
    "$B/qconf" -km >/dev/null 2>&1 || kill "$qm" 2>/dev/null || true
    if ! wait_gone "$QMASTER_GRACE" "$qm"; then
        log "sge_qmaster still shutting down after ${QMASTER_GRACE}s: SIGKILL"
        kill -9 "$qm" 2>/dev/null || true
        wait_gone 5 "$qm" || true
    fi
    stopped+=(qmaster)
fi

left="$(ours | tr '\n' ' ')"
if [ -n "${left// /}" ]; then
    log "killing what is left from $SGE_ROOT: $left"
    # shellcheck disable=SC2086
    kill -9 $left 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 5 $left || { log "ERROR: still alive: $(ours | tr '\n' ' ')"; exit 1; }
    stopped+=(leftovers)
fi

rm -rf "$SGE_ROOT"
extra=""
[ "${#stopped[@]}" -eq 0 ] || extra=" (stopped: ${stopped[*]})"
echo "sge down: removed $SGE_ROOT$extra"
