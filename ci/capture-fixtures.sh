#!/usr/bin/env bash
# Capture real outputs of Slurm 22.05 and its Torque-compatible wrappers into
# tests/fixtures/{slurm,pbs}/ (see tests/fixtures/README.md for what each file is).
#
# Needs the one-node Slurm of ci/slurm-up.sh running. Submits short jobs from a
# scratch directory ($HPCDASK_FIXTURE_WORK, default /tmp/hpcdask-fixtures),
# cancels every job it submitted before it exits, and takes ~2 minutes (it
# waits for a job with --time=1 to reach TIMEOUT).
# Writes NAME.txt (stdout), NAME.stderr (when non-empty) and appends
# "NAME<TAB>rc<TAB>command" lines to $W/commands.tsv.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
S="$REPO/tests/fixtures/slurm"
P="$REPO/tests/fixtures/pbs"
W="${HPCDASK_FIXTURE_WORK:-/tmp/hpcdask-fixtures}"
F='%i|%T|%r|%N|%V|%S|%e|%l|%L'
mkdir -p "$S" "$P" "$W" "$W/out"
cd "$W"
: >commands.tsv
MINE=()                                   # every job id submitted here
cleanup() { [ "${#MINE[@]}" -eq 0 ] || scancel "${MINE[@]}" 2>/dev/null || true; }
trap cleanup EXIT

. "$REPO/ci/capture-lib.sh"
run() { capture "$@"; }   # run DIR NAME CMD...
sub() {   # sub ARGS... : sbatch --parsable, remember the id, print it
    local id
    id="$(sbatch --parsable "$@")"
    MINE+=("$id")
    echo "$id"
}
state() { squeue -h --states=all -j "$1" -o %T 2>/dev/null | sort -u | tr '\n' ' '; }

cat >ok.sh <<'EOF'
#!/bin/bash
echo hello
EOF
cat >sleep.sh <<'EOF'
#!/bin/bash
sleep 600
EOF
cat >fail.sh <<'EOF'
#!/bin/bash
echo "about to fail" >&2
exit 3
EOF
chmod +x ok.sh sleep.sh fail.sh
O="$W/out/slurm-%j.out"
A="$W/out/slurm-%A_%a.out"

# ------------------------------------------------------------------ sbatch
T1=$(sub -J hx-timeout --time=1 -o "$O" sleep.sh)   # first: needs ~1-2 min
run "$S" sbatch_parsable sbatch --parsable -J hx-completed -o "$O" ok.sh
C1=$(cat "$S/sbatch_parsable.txt"); MINE+=("$C1")
run "$S" sbatch_parsable_array sbatch --parsable -J hx-arr-done --array=0-3 -o "$A" ok.sh
AD=$(cat "$S/sbatch_parsable_array.txt"); MINE+=("$AD")
run "$S" sbatch_plain sbatch -J hx-plain -o "$O" ok.sh
MINE+=("$(awk '{print $NF}' "$S/sbatch_plain.txt")")
run "$S" sbatch_bad_partition sbatch --parsable -p nosuchpartition ok.sh

F1=$(sub -J hx-failed -o "$O" fail.sh)
R1=$(sub -J hx-running --time=00:10:00 -o "$O" sleep.sh)
X1=$(sub -J hx-cancelled --time=00:10:00 -o "$O" sleep.sh)
P1=$(sub -J hx-pending -p down --time=00:10:00 -o "$O" sleep.sh)
H1=$(sub -J hx-held -H --time=00:10:00 -o "$O" sleep.sh)
PA=$(sub -J hx-arr-pending -p down --array=0-3 --time=00:10:00 -o "$A" sleep.sh)
RA=$(sub -J hx-arr-running --array=0-3%2 --time=00:10:00 -o "$A" sleep.sh)

wait_state "$R1" '^RUNNING $' 30
wait_state "$X1" '^RUNNING $' 30
scancel "$X1"
wait_state "$X1" '^CANCELLED $' 30
wait_state "$C1" '^COMPLETED $' 30
wait_state "$AD" '^COMPLETED $' 30
wait_state "$F1" '^FAILED $' 30
wait_state "$RA" 'RUNNING' 30
sleep 1   # let the array throttle settle: 2 running, rest pending

# a job that cannot start yet because the node is busy (reason Resources),
# cancelled right away so it does not block other users of this Slurm
RS=$(sub -J hx-resources -c 64 --time=00:10:00 -o "$O" sleep.sh)
sleep 1.5
run "$S" squeue_pending_resources squeue -h --states=all -j "$RS" -o "$F"
scancel "$RS"

# ------------------------------------------------------------------ squeue
run "$S" squeue_pending squeue -h --states=all -j "$P1" -o "$F"
run "$S" squeue_held squeue -h --states=all -j "$H1" -o "$F"
run "$S" squeue_running squeue -h --states=all -j "$R1" -o "$F"
run "$S" squeue_completed squeue -h --states=all -j "$C1" -o "$F"
run "$S" squeue_failed squeue -h --states=all -j "$F1" -o "$F"
run "$S" squeue_cancelled squeue -h --states=all -j "$X1" -o "$F"
run "$S" squeue_array_pending squeue -h --states=all -j "$PA" -o "$F"
run "$S" squeue_array_running squeue -h --states=all -j "$RA" -o "$F"
run "$S" squeue_array_completed squeue -h --states=all -j "$AD" -o "$F"
run "$S" squeue_array_ids squeue -h --states=all -j "$PA,$RA,$AD" -o '%i|%A|%F|%K|%T|%j'
run "$S" squeue_mixed squeue -h --states=all -j "$P1,$H1,$R1,$C1,$F1,$X1,$PA,$RA,$AD" -o "$F"
run "$S" squeue_mixed_unknown squeue -h --states=all -j "$R1,999999,$C1" -o "$F"
run "$S" squeue_unknown_single squeue -h --states=all -j 999999 -o "$F"
run "$S" squeue_unknown_many squeue -h --states=all -j 999998,999999 -o "$F"
run "$S" squeue_ended_without_states_all squeue -h -j "$C1,$F1,$R1" -o "$F"
run "$S" squeue_ended_single_without_states_all squeue -h -j "$C1" -o "$F"
run "$S" squeue_default_format squeue --states=all -j "$P1,$R1,$C1,$F1,$PA"

# ---------------------------------------------------------------- scontrol
run "$S" scontrol_show_job_completed scontrol -o show job "$C1"
run "$S" scontrol_show_job_failed scontrol -o show job "$F1"
run "$S" scontrol_show_job_cancelled scontrol -o show job "$X1"
run "$S" scontrol_show_job_running scontrol -o show job "$R1"
run "$S" scontrol_show_job_pending scontrol -o show job "$P1"
run "$S" scontrol_show_job_array_running scontrol -o show job "$RA"
run "$S" scontrol_show_job_unknown scontrol -o show job 999999
run "$S" scontrol_show_job_completed_multiline scontrol show job "$C1"

# ------------------------------------------------------------- Torque qsub
mkdir -p "$W/pbsout"
cat >job_dir.pbs <<EOF
#!/bin/bash
#PBS -N hx-pbs-dir
#PBS -q debug
#PBS -l select=1:ncpus=2:mem=1gb
#PBS -l walltime=00:10:00
#PBS -o $W/pbsout/
#PBS -e $W/pbsout/
echo "SLURM_JOB_ID=\$SLURM_JOB_ID SLURM_ARRAY_TASK_ID=\${SLURM_ARRAY_TASK_ID:-} PBS_ARRAY_INDEX=\${PBS_ARRAY_INDEX:-} PBS_ARRAYID=\${PBS_ARRAYID:-} PBS_JOBID=\${PBS_JOBID:-}"
sleep 600
EOF
cat >job_file.pbs <<EOF
#!/bin/bash
#PBS -N hx-pbs-file
#PBS -q debug
#PBS -l select=1:ncpus=2:mem=1gb
#PBS -l walltime=00:10:00
#PBS -o $W/pbsout/file.out
#PBS -e $W/pbsout/file.err
echo out; echo err >&2
EOF
cp job_dir.pbs "$P/qsub_script_dir.pbs"
cp job_file.pbs "$P/qsub_script_file.pbs"

run "$P" qsub qsub job_dir.pbs
Q1=$(cat "$P/qsub.txt"); MINE+=("$Q1")
run "$P" qsub_file qsub job_file.pbs
Q2=$(cat "$P/qsub_file.txt"); MINE+=("$Q2")
run "$P" qsub_o_dir_cmdline qsub -o "$W/pbsout/" -e "$W/pbsout/" job_file.pbs
Q3=$(cat "$P/qsub_o_dir_cmdline.txt"); MINE+=("$Q3")
run "$P" qsub_array qsub -J 0-2 job_dir.pbs
QA=$(cat "$P/qsub_array.txt"); MINE+=("$QA")
run "$P" qsub_pending qsub -q down job_dir.pbs
QP=$(cat "$P/qsub_pending.txt"); MINE+=("$QP")
run "$P" qsub_bad_queue qsub -q nosuchqueue job_dir.pbs
run "$P" qsub_sbatchline qsub --sbatchline -l select=1:ncpus=2:mem=1gb,walltime=00:10:00 -J 0-2 -N name -q debug -o "$W/pbsout/x.out" job_dir.pbs
run "$P" qsub_sbatchline_two_l qsub --sbatchline -l select=1:ncpus=2:mem=1gb -l walltime=00:10:00 job_dir.pbs

wait_state "$Q1" '^RUNNING $' 30
wait_state "$Q2" '^COMPLETED $' 30
wait_state "$Q3" '^FAILED $' 30 || true
wait_state "$QA" '^RUNNING $' 30
sleep 0.5
run "$P" scontrol_show_job_qsub_dir scontrol -o show job "$Q1"
run "$P" scontrol_show_job_qsub_file scontrol -o show job "$Q2"
run "$P" scontrol_show_job_qsub_o_dir_cmdline scontrol -o show job "$Q3"
run "$P" scontrol_show_job_qsub_array scontrol -o show job "$QA"
QA_IDS=$(squeue -h --states=all -j "$QA" -o %A | sort -n | tr '\n' ' ')
run "$P" squeue_qsub_array squeue -h --states=all -j "$QA" -o '%i|%A|%T|%j'

run "$P" qstat_torque_brief qstat "$Q1" "$Q2" "$QP"
run "$P" qstat_f_torque_running qstat -f "$Q1" "$R1"
run "$P" qstat_f_torque_finished qstat -f "$Q2" "$F1"
run "$P" qstat_f_torque_pending qstat -f "$QP"
run "$P" qstat_f_torque_array qstat -f $QA_IDS
run "$P" qstat_f_torque_array_index qstat -f "${QA}_1"
run "$P" qstat_f_unknown qstat -f 999999
run "$P" qstat_f_unknown_mixed qstat -f 999999 "$Q1"
run "$P" qstat_x qstat -x "$Q1"
run "$P" qstat_xf qstat -xf "$Q1"

# ---------------------------------------------------------- wait for TIMEOUT
wait_state "$T1" '^TIMEOUT $' 150
run "$S" squeue_timeout squeue -h --states=all -j "$T1" -o "$F"
run "$S" scontrol_show_job_timeout scontrol -o show job "$T1"
run "$P" qstat_f_torque_timeout qstat -f "$T1"

# -------------------------------------------------------------- cancelling
run "$P" qdel_many qdel "$Q1" "$QP"
sleep 0.5
run "$P" qstat_f_after_qdel qstat -f "$Q1" "$QP"
run "$P" qdel_finished qdel "$Q2"
run "$P" qdel_unknown qdel 999999
run "$P" qdel_array_index qdel "${QA}_1"
sleep 0.5
run "$P" squeue_after_qdel_array_index squeue -h --states=all -j "$QA" -o '%i|%A|%T'
# array elements by their own (raw) job id: squeue finds them, cancelling does not
RAW=$(squeue -h -j "${RA}_0" -o %A)
run "$S" squeue_array_raw_id squeue -h --states=all -j "$RAW" -o '%i|%A|%T'
run "$S" scancel_array_raw_element scancel "$RAW"
run "$S" scancel_array_raw_element_verbose scancel -v "$RAW"
run "$P" qdel_array_raw_element qdel "$RAW"
sleep 0.5
run "$S" squeue_after_raw_element_cancel squeue -h --states=all -j "$RA" -o '%i|%A|%T'
run "$S" scancel_array_element scancel "${RA}_0"
sleep 0.5
run "$S" squeue_after_array_element_cancel squeue -h --states=all -j "$RA" -o '%i|%A|%T'
run "$S" scancel_many scancel "$R1" "$P1" "$H1" "$PA" "$RA"
run "$S" scancel_finished scancel "$C1"
run "$S" scancel_finished_and_live scancel "$C1" $QA_IDS
run "$S" scancel_unknown scancel 999999
sleep 0.5
run "$S" squeue_after_scancel squeue -h --states=all -j "$R1,$P1,$H1,$PA,$RA" -o "$F"

cleanup
MINE=()
echo "captured into $S and $P; commands in $W/commands.tsv"
