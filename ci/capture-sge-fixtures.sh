#!/usr/bin/env bash
# Capture real outputs of Son of Grid Engine 8.1.9's qsub / qstat / qdel /
# qacct / qmod into tests/fixtures/sge/ (see tests/fixtures/README.md, section
# "Son of Grid Engine", for what each file is).
#
# Needs the one-node SGE of ci/sge-up.sh running, with no other job in it
# (the first capture is "no jobs"). Submits short jobs as root from a scratch
# directory ($HPCDASK_FIXTURE_WORK, default /tmp/hpcdask-sge-fixtures), deletes
# every job it submitted before it exits (trap), and takes ~1 minute.
# Writes NAME.txt (stdout), NAME.stderr (when non-empty) and appends
# "NAME<TAB>rc<TAB>command" lines to $W/commands.tsv, and "what<TAB>id" lines
# to $W/ids.tsv.
#
# One scenario at a time where a capture must show one job only: `qstat -xml`
# cannot select jobs by id, it lists all of the caller's jobs.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
G="$REPO/tests/fixtures/sge"
W="${HPCDASK_FIXTURE_WORK:-/tmp/hpcdask-sge-fixtures}"
SGE_ROOT="${HPCDASK_SGE_ROOT:-/opt/hpcdask-sge}"
SETTINGS="$SGE_ROOT/default/common/settings.sh"

[ -f "$SETTINGS" ] || { echo "capture: no $SETTINGS: run bash ci/sge-up.sh" >&2; exit 1; }
# SGE's settings.sh reads $MANPATH unguarded: not under `set -u`
set +u
# shellcheck disable=SC1090
. "$SETTINGS"
set -u
[ "$(command -v qsub)" = "$SGE_ROOT/bin/lx-amd64/qsub" ] || { echo "capture: qsub is not SGE's" >&2; exit 1; }
qstat -u '*' >/dev/null || { echo "capture: SGE does not answer: run bash ci/sge-up.sh" >&2; exit 1; }
if [ -n "$(qstat -u '*')" ]; then
    echo "capture: SGE already holds jobs; capture needs an empty queue:" >&2
    qstat -u '*' >&2
    exit 1
fi

rm -rf "$G" "$W"
mkdir -p "$G" "$W/out"
cd "$W"
: >commands.tsv
: >ids.tsv

. "$REPO/ci/capture-lib.sh"
EXECD_PID="$(sge_execd_pid)"

# every job id submitted here, one a line (a file: ids are noted from the
# subshells of $(sub ...))
MINE="$W/mine.txt"
: >"$MINE"
mine() { cat "$MINE"; }
cleanup() {
    kill -CONT "$EXECD_PID" 2>/dev/null || true   # never leave execd stopped
    if [ -s "$MINE" ]; then
        # shellcheck disable=SC2046
        qdel $(mine) >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

run() { capture "$G" "$@"; }   # run NAME CMD... into $G
note() { printf '%s\t%s\n' "$1" "$2" >>ids.tsv; }
sub() {   # sub WHAT ARGS... : qsub -terse, remember the (base) id, print it
    local out id
    out="$(qsub -terse -o "$W/out" -e "$W/out" "${@:2}")"
    id="${out%%.*}"
    echo "$id" >>"$MINE"
    note "$1" "$out"
    echo "$id"
}
# the states of job ID's lines in plain qstat (one per task line)
state() { qstat -u '*' | awk -v id="$1" '$1 == id {print $5}' | sort -u | tr '\n' ' '; }
wait_gone() {  # wait_gone ID...: until qstat knows none of them
    local i id left
    for i in $(seq 150); do
        left=""
        for id in "$@"; do [ -z "$(state "$id")" ] || left="$left $id"; done
        [ -n "$left" ] || return 0
        sleep 0.2
    done
    echo "capture: jobs$left still in the queue" >&2
    return 1
}
wait_acct() {  # wait_acct ID: until qacct has its record
    local i
    for i in $(seq 100); do
        qacct -j "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "capture: qacct has no record of job $1" >&2
    return 1
}
delete() { qdel "$@" >/dev/null 2>&1 || true; wait_gone "$@"; }

cat >ok.sh <<'EOF'
#!/bin/sh
echo hello
EOF
cat >sleep.sh <<'EOF'
#!/bin/sh
sleep 600
EOF
cat >fail.sh <<'EOF'
#!/bin/sh
echo "about to fail" >&2
exit 3
EOF
cat >exit100.sh <<'EOF'
#!/bin/sh
exit 100
EOF
chmod +x ok.sh sleep.sh fail.sh exit100.sh

# ------------------------------------------------------------------ qsub
run qsub_help_head sh -c 'qsub -help | head -n 1'
run qstat_xml_empty qstat -xml
run qsub_bad_queue qsub -terse -q nosuchqueue ok.sh

run qsub_terse qsub -terse -N hx-completed -o "$W/out" -e "$W/out" ok.sh
C1=$(cat "$G/qsub_terse.txt"); echo "$C1" >>"$MINE"; note completed "$C1"
run qsub_terse_array qsub -terse -N hx-arr-done -t 1-4 -o "$W/out" -e "$W/out" ok.sh
AD=$(cut -d. -f1 "$G/qsub_terse_array.txt"); echo "$AD" >>"$MINE"; note "array 1-4 done" "$AD"
run qsub_plain qsub -N hx-plain -o "$W/out" -e "$W/out" ok.sh
P0=$(awk '{print $3}' "$G/qsub_plain.txt"); echo "$P0" >>"$MINE"; note "plain qsub" "$P0"
run qsub_plain_array qsub -N hx-plain-arr -t 1-2 -o "$W/out" -e "$W/out" ok.sh
PA0=$(awk '{print $3}' "$G/qsub_plain_array.txt" | cut -d. -f1); echo "$PA0" >>"$MINE"; note "plain qsub -t 1-2" "$PA0"
F1=$(sub "failed (exit 3)" -N hx-failed fail.sh)
wait_gone "$C1" "$AD" "$F1" "$P0" "$PA0"

# ----------------------------------------------- one job per qstat -xml
# pending: down.q is disabled
P1=$(sub "pending (down.q)" -N hx-pending -q down.q sleep.sh)
wait_state "$P1" '^qw $' 10
run qstat_xml_pending qstat -xml
run qstat_j_pending qstat -j "$P1"
delete "$P1"

# running, 2 slots of the smp PE and a walltime
R1=$(sub "running (-pe smp 2, h_rt 600)" -N hx-running -pe smp 2 -l h_rt=600 sleep.sh)
wait_state "$R1" '^r $' 20
run qstat_xml_running qstat -xml
run qstat_j_running qstat -j "$R1"
run qstat_j_running_xml qstat -j "$R1" -xml
run qdel_running qdel "$R1"
wait_gone "$R1"

# array 1-4 pending, as one line; and one with a step
PA=$(sub "array 1-4 pending (down.q)" -N hx-arr-pending -q down.q -t 1-4 sleep.sh)
wait_state "$PA" '^qw $' 10
run qstat_xml_array_pending qstat -xml
run qdel_pending qdel "$PA"
wait_gone "$PA"
PS=$(sub "array 2-10:2 pending (down.q)" -N hx-arr-step -q down.q -t 2-10:2 sleep.sh)
wait_state "$PS" '^qw $' 10
run qstat_xml_array_step_pending qstat -xml
delete "$PS"

# array 1-4 with at most 2 tasks at once: 2 running, 2 pending
RA=$(sub "array 1-4, -tc 2 (partly running)" -N hx-arr-running -t 1-4 -tc 2 sleep.sh)
wait_state "$RA" '^qw r $' 20
sleep 1
run qstat_xml_array_partly_running qstat -xml
run qstat_j_array_partly_running qstat -j "$RA"
run qdel_array_task qdel "$RA.3"
run qdel_array_running_tasks qdel "$RA"
wait_gone "$RA"

# held
H1=$(sub "held (-h)" -N hx-held -h sleep.sh)
wait_state "$H1" '^hqw $' 10
run qstat_xml_held qstat -xml
delete "$H1"

# error: its output file cannot be opened
E1=$(sub "Eqw (-o into a missing directory)" -N hx-eqw -o /nonexistent/dir/out sleep.sh)
wait_state "$E1" '^Eqw $' 20
run qstat_xml_eqw qstat -xml
run qstat_j_eqw qstat -j "$E1"
run qstat_j_eqw_xml qstat -j "$E1" -xml
delete "$E1"
# error: the job's exit code is 100
E2=$(sub "Eqw (exit 100)" -N hx-exit100 exit100.sh)
wait_state "$E2" '^Eqw $' 20
run qstat_j_eqw_exit100 qstat -j "$E2"
delete "$E2"

# suspended
S1=$(sub "suspended (qmod -sj)" -N hx-suspended sleep.sh)
wait_state "$S1" '^r $' 20
run qmod_suspend qmod -sj "$S1"
wait_state "$S1" '^s $' 10
run qstat_xml_suspended qstat -xml
delete "$S1"

# deleted while its execd does not answer (stopped): dr until it does
D1=$(sub "dr (qdel while execd is stopped)" -N hx-dr sleep.sh)
wait_state "$D1" '^r $' 20
kill -STOP "$EXECD_PID"
qdel "$D1" >/dev/null
wait_state "$D1" '^dr $' 10 || { kill -CONT "$EXECD_PID"; exit 1; }
run qstat_xml_deleting_dr qstat -xml
kill -CONT "$EXECD_PID"
wait_gone "$D1"

# ------------------------------------------------------ several at once
M_R=$(sub "mixed: running" -N hx-m-running sleep.sh)
M_P=$(sub "mixed: pending" -N hx-m-pending -q down.q sleep.sh)
M_H=$(sub "mixed: held" -N hx-m-held -h sleep.sh)
M_E=$(sub "mixed: Eqw" -N hx-m-eqw -o /nonexistent/dir/out sleep.sh)
M_A=$(sub "mixed: array 1-3, -tc 1" -N hx-m-arr -t 1-3 -tc 1 sleep.sh)
M_X=$(sub "mixed: deleted while running" -N hx-m-deleted sleep.sh)
wait_state "$M_R" '^r $' 20
wait_state "$M_E" '^Eqw $' 20
wait_state "$M_A" '^qw r $' 20
wait_state "$M_X" '^r $' 20
run qdel_one qdel "$M_X"
wait_gone "$M_X"
run qstat_xml_mixed qstat -xml
run qstat_xml_all_users qstat -xml -u '*'
run qstat_plain_mixed qstat
run qstat_xml_finished_zombies qstat -xml -s z
# a job killed at its h_rt (3 s): submitted after the qstat captures above,
# looked at below
T1=$(sub "killed at h_rt=0:0:3" -N hx-h-rt -l h_rt=0:0:3 sleep.sh)
run qdel_many qdel "$M_R" "$M_P" "$M_H" "$M_E" "$M_A"
wait_gone "$M_R" "$M_P" "$M_H" "$M_E" "$M_A"

# ------------------------------------------------- ended and unknown jobs
wait_gone "$T1"
run qdel_finished qdel "$C1"
run qdel_unknown qdel 999999
L1=$(sub "qdel with an unknown id" -N hx-live -q down.q sleep.sh)
wait_state "$L1" '^qw $' 10
run qdel_unknown_and_live qdel 999999 "$L1"
wait_gone "$L1"
run qstat_j_finished qstat -j "$C1"
run qstat_j_unknown qstat -j 999999
run qstat_j_unknown_xml qstat -j 999999 -xml

for id in "$C1" "$F1" "$T1" "$M_X" "$R1" "$AD"; do wait_acct "$id"; done
run qacct_completed qacct -j "$C1"
run qacct_failed qacct -j "$F1"
run qacct_h_rt qacct -j "$T1"
run qacct_deleted qacct -j "$M_X"
run qacct_deleted_pe qacct -j "$R1"
run qacct_deleted_pending qacct -j "$P1"
run qacct_array qacct -j "$AD"
run qacct_unknown qacct -j 999999

cp ok.sh sleep.sh fail.sh exit100.sh "$G/"
# shellcheck disable=SC2046
wait_gone $(mine)
: >"$MINE"
echo "captured into $G; commands in $W/commands.tsv, job ids in $W/ids.tsv"
