# Shared names and helpers of the multi-node Slurm test site (issue #13):
# sourced by ci/multinode-up.sh, ci/multinode-down.sh and ci/multinode-node.sh.
# See ci/MULTINODE-NOTES.md. Not a script of its own.
#
# The site: a Slurm cluster `hpcmn` beside the one-node Slurm of ci/slurm-up.sh.
#   - controller `mnctl` (slurmctld under `unshare --uts`, in the host's network
#     namespace, listening on 10.77.0.1:7817);
#   - nodes mn1..mn4, one slurmd each in its own network namespace `hpcmn-mnI`
#     (eth0 10.77.0.1I/24, default route via 10.77.0.1) and UTS namespace;
#   - the bridge `hpcmn0` (10.77.0.1/24) joins the nodes' veths and the host
#     (`mnlogin`, the "login node" address services must bind to).
# Everything it makes carries "hpcmn" or "slurm-mn" in its name.

MN_CLUSTER=hpcmn
MN_CONF_DIR=/etc/slurm-mn
MN_CONF=$MN_CONF_DIR/slurm.conf
MN_ENV_FILE=$MN_CONF_DIR/env
MN_STATE_DIR=/var/spool/slurm-mn        # StateSaveLocation (ctld) and the slurmd spools
MN_RUN_DIR=/run/slurm-mn                # pid files and the dummy GPU devices
MN_LOG_DIR=/var/log/slurm-mn
MN_GPU_DIR=$MN_RUN_DIR/dev
MN_CTLD_PID=$MN_RUN_DIR/slurmctld.pid
MN_CTLD_PORT=7817
MN_SLURMD_PORT=7818
MN_BRIDGE=hpcmn0
MN_PREFIX=hpcmn-                        # netns and host-end veth names: hpcmn-mn1 ...
MN_HOST_ADDR=10.77.0.1
MN_NETMASK=24
MN_CTL_HOST=mnctl
MN_LOGIN_HOST=mnlogin
MN_NODES=(mn1 mn2 mn3 mn4)
MN_CPU_PARTITION=batch                  # default partition: all nodes
MN_GPU_PARTITION=gpu
MN_GPU_NODE=mn4
MN_GPUS=2
MN_NODE_CPUS=8
MN_NODE_MEM_MB=8192
MN_HOSTS_MARK="# hpcdask-multinode"     # ends every /etc/hosts line the site adds
MN_HOSTS=/etc/hosts
MN_BIN=/usr/sbin
MN_LOCK=/run/lock/hpcdask-multinode.lock  # one of these scripts at a time

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
# every Slurm command in these scripts talks to the multi-node controller
export SLURM_CONF=$MN_CONF

mn_ns() { echo "${MN_PREFIX}$1"; }          # network namespace of node $1
mn_veth() { echo "${MN_PREFIX}$1"; }        # host end of node $1's veth (on the bridge)
mn_addr() { echo "10.77.0.$((10 + ${1#mn}))"; }   # mn1 -> 10.77.0.11

mn_is_node() {
    local n
    for n in "${MN_NODES[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# log/die: the calling script sets MN_WHO (its name) first
log() { echo "${MN_WHO:-multinode}: $*" >&2; }
mn_tails() {
    local f
    for f in "$MN_LOG_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "----- tail $f -----" >&2
        tail -n 20 "$f" >&2 || true
    done
}
die() {
    log "ERROR: $*"
    mn_tails
    exit 1
}

# one script at a time on the machine (two engineers' test runs may start it
# together); a script called by one that holds the lock (up -> down) goes on
mn_lock() {
    [ -z "${MN_LOCKED:-}" ] || return 0
    install -d -m 0755 "$(dirname "$MN_LOCK")"
    exec 9>>"$MN_LOCK"
    flock -w 120 9 || die "another multinode script has held $MN_LOCK for 120 s"
    export MN_LOCKED=1
    MN_LOCK_OWNER=1
}

# pid of a live (not zombie) process NAME whose pid is in PIDFILE, else nothing
mn_pidfile_pid() {
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] || return 0
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ] \
        && ! awk '{exit !($3 == "Z")}' "/proc/$pid/stat" 2>/dev/null; then
        echo "$pid"
    fi
}

mn_ctld_pid() { mn_pidfile_pid "$MN_CTLD_PID" slurmctld; }

# pids in node $1's network namespace (nothing when the namespace is missing)
mn_ns_pids() {
    [ -e "/run/netns/$(mn_ns "$1")" ] || return 0
    ip netns pids "$(mn_ns "$1")" 2>/dev/null || true
}

# the slurmd of node $1: from its pid file, only when that process lives in the
# node's network namespace
mn_slurmd_pid() {
    local node=$1 pid ns_ino proc_ino
    pid="$(mn_pidfile_pid "$MN_RUN_DIR/slurmd-$node.pid" slurmd)"
    [ -n "$pid" ] || return 0
    ns_ino="$(stat -L -c %i "/run/netns/$(mn_ns "$node")" 2>/dev/null || true)"
    proc_ino="$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null || true)"
    [ -n "$ns_ino" ] && [ "$ns_ino" = "$proc_ino" ] && echo "$pid"
    return 0
}

# Pids of the processes whose UTS namespace (not the host's) carries one of the
# hostnames given (mnctl, mn1, ...): a daemon, its children and its jobs, found
# even when a network namespace's mount is already gone. Host processes (same UTS
# namespace as this script) and other people's namespaces are never listed.
mn_uts_pids() {
    local names=" $* " host_uts pids pid name
    host_uts="$(readlink /proc/self/ns/uts)"
    # "uts:[N] /proc/PID/ns/uts" for every process; one line of pids per namespace
    # (find fails when a process exits while it runs: that is no error here)
    { find /proc/[0-9]*/ns/uts -maxdepth 0 -printf '%l %p\n' 2>/dev/null || true; } \
        | awk -v host="$host_uts" '$1 ~ /^uts:/ && $1 != host {
              split($2, p, "/"); m[$1] = m[$1] " " p[3] }
              END { for (k in m) print m[k] }' \
        | while read -r pids; do
            pid="${pids%% *}"
            name="$(nsenter --uts="/proc/$pid/ns/uts" hostname 2>/dev/null || true)"
            if [ -n "$name" ] && [[ "$names" == *" $name "* ]]; then echo "$pids"; fi
        done | tr ' ' '\n' | sed '/^$/d'
    return 0
}

# SIGKILL every process in node $1's network and UTS namespaces until none is
# left (a job may fork while it is being killed); prints how many were killed
mn_kill_node_procs() {
    local node=$1 all="" pids
    for _ in $(seq 50); do
        pids="$( { mn_ns_pids "$node"; mn_uts_pids "$node"; } | sort -u)"
        [ -n "$pids" ] || break
        all+=$'\n'"$pids"
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        sleep 0.05
    done
    echo "$all" | sed '/^$/d' | sort -u | wc -l
}

# run "$@" in a small, fixed environment: the daemons must not inherit whatever the
# caller had (a virtualenv's PATH, SLURM_* of a job, the one-node SLURM_CONF)
mn_clean_env() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 SLURM_CONF="$MN_CONF" "$@"
}

# start node $1's slurmd in its network namespace under its own hostname.
# Not `ip netns exec`: that remounts /sys and slurmd dies ("No filesystem mounted
# on /sys/fs/cgroup").
mn_start_slurmd() {
    local node=$1 ns
    ns="$(mn_ns "$node")"
    [ -e "/run/netns/$ns" ] || die "network namespace $ns is missing: run bash ci/multinode-up.sh"
    [ -f "$MN_CONF" ] || die "$MN_CONF is missing: run bash ci/multinode-up.sh"
    rm -f "$MN_RUN_DIR/slurmd-$node.pid"
    install -d -m 0755 "$MN_STATE_DIR/$node"
    mn_clean_env nsenter --net="/run/netns/$ns" -- unshare --uts \
        sh -c "hostname $node && exec $MN_BIN/slurmd -f $MN_CONF -N $node" \
        || die "slurmd of $node failed to start"
    for _ in $(seq 50); do
        [ -n "$(mn_slurmd_pid "$node")" ] && return 0
        sleep 0.1
    done
    die "slurmd of $node did not write its pid file $MN_RUN_DIR/slurmd-$node.pid"
}
