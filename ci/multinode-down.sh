#!/usr/bin/env bash
# Tear down the multi-node Slurm test site of ci/multinode-up.sh, leaving nothing
# behind; the one-node Slurm of ci/slurm-up.sh is not touched.
#
# Run as root. Idempotent, and works on a half-up site:
#   1. stops slurmctld (first, so it does not mark nodes down or requeue jobs
#      while they go), then kills every process in the nodes' network and UTS
#      namespaces (slurmd, slurmstepd, jobs);
#   2. deletes the network namespaces, the veths and the bridge hpcmn0;
#   3. removes the /etc/hosts lines marked "# hpcdask-multinode";
#   4. removes /etc/slurm-mn, /var/spool/slurm-mn, /run/slurm-mn (pid files and
#      the dummy GPU devices) and /var/log/slurm-mn;
#   5. checks that none of it is left (processes, netns, links, hosts lines,
#      directories) and says so in one line.
set -euo pipefail
MN_WHO=multinode-down
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=ci/multinode-lib.sh
. "$HERE/multinode-lib.sh"

started_at=$(date +%s.%N)
[ "$(id -u)" -eq 0 ] || { echo "$MN_WHO: must run as root" >&2; exit 1; }
mn_lock
# keep the daemons' logs for the error message until the very end
die() {
    log "ERROR: $*"
    mn_tails
    exit 1
}
done_parts=()

# ------------------------------------------------------------- processes
# slurmctld first: by its pid file, else by its exact command line (our own
# config path), then anything left in its UTS namespace (slurmscriptd)
ctld="$(mn_ctld_pid)"
[ -n "$ctld" ] || ctld="$(pgrep -x -f "$MN_BIN/slurmctld -f $MN_CONF" || true)"
if [ -n "$ctld" ]; then
    # shellcheck disable=SC2086
    kill $ctld 2>/dev/null || true
    for _ in $(seq 50); do
        alive=""
        for p in $ctld; do
            if kill -0 "$p" 2>/dev/null && ! awk '{exit !($3 == "Z")}' "/proc/$p/stat" 2>/dev/null; then
                alive+=" $p"
            fi
        done
        [ -n "$alive" ] || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    [ -z "$alive" ] || kill -9 $alive 2>/dev/null || true
    done_parts+=("slurmctld")
fi
for _ in $(seq 20); do
    left="$(mn_uts_pids "$MN_CTL_HOST")"
    [ -n "$left" ] || break
    # shellcheck disable=SC2086
    kill -9 $left 2>/dev/null || true
    sleep 0.05
done

# the nodes: every process in their namespaces (found by network namespace and
# by hostname, so also when a namespace's mount is gone)
killed=0
for n in "${MN_NODES[@]}"; do
    k="$(mn_kill_node_procs "$n")"
    killed=$((killed + k))
done
[ "$killed" -eq 0 ] || done_parts+=("$killed node processes")

# --------------------------------------------------------------- network
nets=0
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$MN_PREFIX" || true); do
    ip netns del "$ns" 2>/dev/null || log "cannot delete network namespace $ns"
    nets=$((nets + 1))
done
links=0
# host ends of the veths (they go with their namespace, unless half made) and the bridge
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 \
        | grep -E "^(${MN_PREFIX}|${MN_BRIDGE}\$)" || true); do
    ip link del "$link" 2>/dev/null || true
    links=$((links + 1))
done
[ "$nets" -eq 0 ] || done_parts+=("$nets netns")
[ "$links" -eq 0 ] || done_parts+=("$links links")

# ------------------------------------------------------------ /etc/hosts
if grep -q -F -- "$MN_HOSTS_MARK" "$MN_HOSTS" 2>/dev/null; then
    kept="$(grep -v -F -- "$MN_HOSTS_MARK" "$MN_HOSTS" || true)"
    printf '%s\n' "$kept" >"$MN_HOSTS"       # in place: the file may be a bind mount
    done_parts+=("$MN_HOSTS lines")
fi

# ------------------------------------------------------------------ files
check_left() {     # everything the site makes; prints what is still there
    local what=""
    [ -z "$(mn_ctld_pid)" ] || what+=" slurmctld"
    for n in "${MN_NODES[@]}"; do
        [ -z "$(mn_ns_pids "$n")$(mn_uts_pids "$n")" ] || what+=" processes-of-$n"
    done
    [ -z "$(mn_uts_pids "$MN_CTL_HOST")" ] || what+=" processes-of-$MN_CTL_HOST"
    ip netns list 2>/dev/null | grep -q "^$MN_PREFIX" && what+=" netns"
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 \
        | grep -q -E "^(${MN_PREFIX}|${MN_BRIDGE}\$)" && what+=" links"
    grep -q -F -- "$MN_HOSTS_MARK" "$MN_HOSTS" 2>/dev/null && what+=" hosts-lines"
    for d in "$MN_CONF_DIR" "$MN_STATE_DIR" "$MN_RUN_DIR" "$MN_LOG_DIR"; do
        [ ! -e "$d" ] || what+=" $d"
    done
    echo "$what"
}

# the links of a deleted namespace go asynchronously: wait for them before the
# directories (and the logs die() shows) are removed
for _ in $(seq 50); do
    left="$(check_left)"
    case "$left" in
        *slurmctld*|*processes*|*netns*|*links*|*hosts-lines*) sleep 0.1 ;;
        *) break ;;
    esac
done
case "$left" in
    *slurmctld*|*processes*|*netns*|*links*|*hosts-lines*) die "still there after teardown:$left" ;;
esac

dirs=0
for d in "$MN_CONF_DIR" "$MN_STATE_DIR" "$MN_RUN_DIR" "$MN_LOG_DIR"; do
    if [ -e "$d" ]; then
        rm -rf "$d"
        dirs=$((dirs + 1))
    fi
done
[ "$dirs" -eq 0 ] || done_parts+=("$dirs directories")

left="$(check_left)"
[ -z "$left" ] || die "still there after teardown:$left"
# the lock file goes last, unless a caller holds it (multinode-up.sh goes on)
[ -z "${MN_LOCK_OWNER:-}" ] || rm -f "$MN_LOCK"

elapsed="$(awk -v a="$started_at" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')"
if [ "${#done_parts[@]}" -eq 0 ]; then
    echo "multinode down: nothing was there (${elapsed} s)"
else
    summary="$(printf '%s, ' "${done_parts[@]}")"
    echo "multinode down: removed ${summary%, } in ${elapsed} s; nothing left"
fi
