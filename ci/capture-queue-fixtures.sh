#!/usr/bin/env bash
# Capture real Slurm 22.05 outputs for the cases of a queue that prints and does
# surprising things (issue #12) into tests/fixtures/slurm/queue/: job arrays whose
# pending elements have holes and a long list (compressed, cut at 64 characters,
# and one line per element with --array), times as epoch seconds
# (SLURM_TIME_FORMAT=%s) and as a user's "relative" setting, the site's
# MaxArraySize, a requeued job, a preempted one (REQUEUE and CANCEL), and a job
# held in SPECIAL_EXIT.
#
# Needs the one-node Slurm of ci/slurm-up.sh (partitions down, preemptable,
# cancelable, urgent) and nothing else of ours running on it (it fills the node
# to make a preemption happen). Cancels every job it submitted; ~1 minute.
# Writes NAME.txt (stdout), NAME.stderr (when non-empty) and appends
# "NAME<TAB>rc<TAB>command" to $W/commands.tsv.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
Q="$REPO/tests/fixtures/slurm/queue"
W="${HPCDASK_FIXTURE_WORK:-/tmp/hpcdask-queue-fixtures}"
F='%i|%T|%r|%N|%V|%S|%e|%l|%L'
mkdir -p "$Q" "$W"
cd "$W"
: >commands.tsv
MINE=()
cleanup() { [ "${#MINE[@]}" -eq 0 ] || scancel "${MINE[@]}" 2>/dev/null || true; }
trap cleanup EXIT

. "$REPO/ci/capture-lib.sh"
run() { capture "$Q" "$@"; }   # run NAME CMD... into $Q
sub() { local id; id="$(sbatch --parsable -o /dev/null "$@")"; MINE+=("${id%%;*}"); echo "${id%%;*}"; }
state() { squeue -h --states=all -j "$1" -o %T 2>/dev/null | sort -u | tr '\n' ' '; }
printf '#!/bin/bash\nsleep 600\n' >sleep.sh

# -------------------------------------------- arrays with holes, long lists
A=$(sub -J hx-holes -p down --array=0-99 sleep.sh)
scancel "${A}_1" "${A}_3" "${A}_5" "${A}_10" "${A}_20" "${A}_33" "${A}_47"
S=$(sub -J hx-step -p down --array=0-40:2 sleep.sh)
sleep 1
run squeue_array_holes env -u SLURM_BITSTR_LEN squeue --noheader --format="$F" --jobs="$A,$S"
run squeue_array_holes_array_epoch env SLURM_TIME_FORMAT=%s squeue --noheader --array --states=all --format="$F" --jobs="$A"
run squeue_array_step env -u SLURM_BITSTR_LEN squeue --noheader --format="$F" --jobs="$S"

# --------------------------------------------------------- time formats
R=$(sub -J hx-running --time=00:10:00 sleep.sh)
wait_state "$R" RUNNING 30
run squeue_running_epoch env SLURM_TIME_FORMAT=%s squeue --noheader --states=all --format="$F" --jobs="$R"
run squeue_running_relative env SLURM_TIME_FORMAT=relative squeue --noheader --states=all --format="$F" --jobs="$R"
run squeue_running_iso_space env 'SLURM_TIME_FORMAT=%F %T' squeue --noheader --states=all --format="$F" --jobs="$R"
run squeue_listing_tagged env SLURM_TIME_FORMAT=%s squeue --noheader --array --format="$F|%j|%k" --jobs="$R"

# ------------------------------------------------------------ site limits
run scontrol_show_config scontrol show config
run sbatch_array_too_large sbatch --parsable -p down --array=0-1500 sleep.sh

# ------------------------------------------------------ requeue, SPECIAL_EXIT
scontrol requeue "$R"
wait_state "$R" PENDING 20
run squeue_requeued_epoch env SLURM_TIME_FORMAT=%s squeue --noheader --states=all --format="$F" --jobs="$R"
run scontrol_show_job_requeued scontrol -o show job "$R"
H=$(sub -J hx-special --time=00:10:00 sleep.sh)
wait_state "$H" RUNNING 30
scontrol requeuehold State=SpecialExit "$H"
wait_state "$H" SPECIAL_EXIT 30
run squeue_special_exit_epoch env SLURM_TIME_FORMAT=%s squeue --noheader --states=all --format="$F" --jobs="$H"
scancel "$R" "$H" "$A" "$S"

# ------------------------------------------------------------- preemption
P=$(sub -J hx-preempt-requeue -p preemptable -c 32 --mem=1G sleep.sh)
C=$(sub -J hx-preempt-cancel -p cancelable -c 32 --mem=1G sleep.sh)
wait_state "$P" RUNNING 30
wait_state "$C" RUNNING 30
U=$(sub -J hx-urgent -p urgent -c 64 --mem=1G --time=1 --wrap 'sleep 5')
wait_state "$C" PREEMPTED 30
sleep 1
run squeue_preempted_epoch env SLURM_TIME_FORMAT=%s squeue --noheader --states=all --format="$F" --jobs="$P,$C"
run scontrol_show_job_preempted_cancel scontrol -o show job "$C"
scancel "$P" "$C" "$U"
echo "captured into $Q (jobs: holes $A, step $S, running/requeued $R, special $H, preempt $P $C, urgent $U)"
