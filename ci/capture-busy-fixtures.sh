#!/usr/bin/env bash
# Capture real Slurm 22.05 outputs of a busy queue (issue #16) into
# tests/fixtures/slurm/busy/: what hpcdask reads to forecast when a job would
# start (the exact sinfo and squeue commands of hpcdask.systems.slurm_starts),
# in a partition with a backfill hole bounded by a big job's reservation, and
# the status of jobs that did start in the hole (squeue with the partition).
#
# Runs on the busy-queue test site of ci/busy-site-up.sh (brought up here when
# missing; node busy1 in partition `busy`, busy2 in `idle`, 16 CPUs each), never
# on the one-node Slurm; cancels every job it submitted; ~15 s.
# Writes NAME.txt (stdout), NAME.stderr (when non-empty), now.txt (epoch seconds
# when the plan was read) and "NAME<TAB>rc<TAB>command" lines in commands.tsv.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
Q="$REPO/tests/fixtures/slurm/busy"
W="${HPCDASK_FIXTURE_WORK:-/tmp/hpcdask-busy-fixtures}"
mkdir -p "$Q" "$W"
cd "$W"
: >"$Q/commands.tsv"
MINE=()
cleanup() { [ "${#MINE[@]}" -eq 0 ] || scancel "${MINE[@]}" 2>/dev/null || true; }
trap cleanup EXIT
bash "$REPO/ci/busy-site-up.sh"
# shellcheck disable=SC1091
. /etc/slurm-busy/env

run() {   # run NAME CMD... : stdout -> NAME.txt, stderr -> NAME.stderr
    local name=$1 rc=0
    shift
    "$@" >"$Q/$name.txt" 2>"$Q/$name.stderr" || rc=$?
    [ -s "$Q/$name.stderr" ] || rm -f "$Q/$name.stderr"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$*" >>"$Q/commands.tsv"
}
sub() { local id; id="$(sbatch --parsable -o /dev/null "$@")"; echo "${id%%;*}"; }
argv() {  # argv N PARTITIONS...: the Nth forecast command, one word a line
    "$PY" -c 'import sys
from hpcdask.systems.slurm_starts import forecast_argvs
print("\n".join(forecast_argvs(sys.argv[2:])[int(sys.argv[1])]))' "$@"
}

# other users: a 12-core job for 10 minutes, and a 16-core job (the whole
# node) that must wait for it: its reservation bounds a 4-core hole
F=$(sub -J busy-fx-fill -p busy -c 12 --mem=1G -t 10 --wrap 'sleep 900')
MINE+=("$F")
sleep 2
B=$(sub -J busy-fx-big -p busy -c 16 --mem=1G -t 5 --wrap 'sleep 900')
MINE+=("$B")
sleep 3
date +%s >"$Q/now.txt"
mapfile -t SINFO < <(argv 0 busy)
mapfile -t SQUEUE < <(argv 1 busy)
run sinfo_busy env SLURM_TIME_FORMAT=%s "${SINFO[@]}"
run squeue_plan env SLURM_TIME_FORMAT=%s "${SQUEUE[@]}"
mapfile -t SINFO2 < <(argv 0 busy idle)
run sinfo_busy_idle env SLURM_TIME_FORMAT=%s "${SINFO2[@]}"
mapfile -t SINFO_ALL < <(argv 0)
run sinfo_all env SLURM_TIME_FORMAT=%s "${SINFO_ALL[@]}"

# what starts: 2 one-core jobs of 8 minutes fit the hole; one of an hour waits
# for the big job; one of an hour in "busy,idle" starts in idle
S1=$(sub -J busy-fx-short -p busy -c 1 --mem=1G -t 8 --wrap 'sleep 900')
S2=$(sub -J busy-fx-short -p busy -c 1 --mem=1G -t 8 --wrap 'sleep 900')
L=$(sub -J busy-fx-long -p busy -c 1 --mem=1G -t 60 --wrap 'sleep 900')
T=$(sub -J busy-fx-two -p busy,idle -c 1 --mem=1G -t 60 --wrap 'sleep 900')
MINE+=("$S1" "$S2" "$L" "$T")
sleep 4
run squeue_status_partition env SLURM_TIME_FORMAT=%s squeue --noheader --array \
    --states=all '--format=%i|%T|%r|%N|%V|%S|%e|%l|%L|%P' "--jobs=$S1,$S2,$L,$T"
run squeue_plan_after env SLURM_TIME_FORMAT=%s "${SQUEUE[@]}"
echo "captured into $Q (jobs $F $B $S1 $S2 $L $T)"
