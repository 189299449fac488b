#!/usr/bin/env bash
# Remove the busy-queue test site of ci/busy-site-up.sh: cancel its jobs, stop
# its slurmctld and slurmds (found by their pid files under /run/slurm-busy and
# checked by name), and remove its state, logs and configuration
# (`--keep-conf`: keep /etc/slurm-busy, as busy-site-up.sh does before writing
# a new one). The one-node Slurm of ci/slurm-up.sh is never touched.
set -euo pipefail

CONF=/etc/slurm-busy/slurm.conf
RUN=/run/slurm-busy
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export SLURM_CONF=$CONF
[ "$(id -u)" -eq 0 ] || { echo "busy-site: must run as root" >&2; exit 1; }

stop() {    # stop PIDFILE NAME
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$2" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

if [ -f "$CONF" ] && [ -n "$(cat "$RUN/slurmctld.pid" 2>/dev/null || true)" ]; then
    # every job of this site (SLURM_CONF: its controller only)
    timeout 10 scancel --user=root 2>/dev/null || true
fi
stop "$RUN/slurmctld.pid" slurmctld
for f in "$RUN"/slurmd-*.pid; do [ -e "$f" ] && stop "$f" slurmd; done
rm -rf "$RUN" /var/spool/slurm-busy /var/log/slurm-busy
[ "${1:-}" = "--keep-conf" ] || rm -rf /etc/slurm-busy
echo "busy site down"
