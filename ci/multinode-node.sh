#!/usr/bin/env bash
# Faults on one node of the multi-node test site (ci/multinode-up.sh), for tests.
#
#   bash ci/multinode-node.sh kill NODE      SIGKILL every process in NODE's namespaces
#                                            (slurmd, slurmstepd, jobs): a dead node
#   bash ci/multinode-node.sh start NODE     start NODE's slurmd if it is not running
#   bash ci/multinode-node.sh restart NODE   kill, then start
#   bash ci/multinode-node.sh netdown NODE   take the host end of NODE's veth down:
#                                            a network partition, processes keep running
#   bash ci/multinode-node.sh netup NODE     end the partition
#   bash ci/multinode-node.sh pids NODE      the pids in NODE's network namespace
#
# NODE is mn1..mn4. Each command returns at once; Slurm notices in its own time
# (DOWN within ~10 s of a kill, idle ~1 s after a start: ci/MULTINODE-NOTES.md).
# Run as root.
set -euo pipefail
MN_WHO=multinode-node
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=ci/multinode-lib.sh
. "$HERE/multinode-lib.sh"

usage() { echo "usage: $0 kill|start|restart|netdown|netup|pids NODE (${MN_NODES[*]})" >&2; exit 2; }
[ "$#" -eq 2 ] || usage
cmd=$1 node=$2
mn_is_node "$node" || usage
[ "$(id -u)" -eq 0 ] || { echo "$MN_WHO: must run as root" >&2; exit 1; }
mn_lock
[ -e "/run/netns/$(mn_ns "$node")" ] \
    || die "node $node has no network namespace: run bash ci/multinode-up.sh"

case "$cmd" in
    kill)
        n="$(mn_kill_node_procs "$node")"
        echo "multinode-node: $node killed ($n processes)"
        ;;
    start)
        if [ -n "$(mn_slurmd_pid "$node")" ]; then
            echo "multinode-node: $node's slurmd is already running (pid $(mn_slurmd_pid "$node"))"
        else
            mn_kill_node_procs "$node" >/dev/null   # leftover stepds / jobs of a kill
            mn_start_slurmd "$node"
            echo "multinode-node: $node's slurmd started (pid $(mn_slurmd_pid "$node"))"
        fi
        ;;
    restart)
        n="$(mn_kill_node_procs "$node")"
        mn_start_slurmd "$node"
        echo "multinode-node: $node restarted ($n processes killed, slurmd pid $(mn_slurmd_pid "$node"))"
        ;;
    netdown)
        ip link set "$(mn_veth "$node")" down
        echo "multinode-node: $node cut off ($(mn_veth "$node") down)"
        ;;
    netup)
        ip link set "$(mn_veth "$node")" up
        echo "multinode-node: $node reconnected ($(mn_veth "$node") up)"
        ;;
    pids)
        mn_ns_pids "$node"
        ;;
    *) usage ;;
esac
