#!/usr/bin/env bash
# Capture the real Son of Grid Engine 8.1.9 outputs that hpcdask's SGE adapter
# reads beyond ci/capture-sge-fixtures.sh's set: `qstat -xml -r` (the poll:
# h_rt, PE, requests), a transferring job (`t`), error reasons of several jobs
# and array tasks at once, qdel of tasks and by name, and `qacct -o USER -E -b`
# (one call for every job that left). Adds files to tests/fixtures/sge/ (names
# below, described in tests/fixtures/README.md, "SGE adapter captures"); the
# other files there are left alone.
#
# Needs a one-node SGE of ci/sge-up.sh with no job in it, e.g. a private one:
#   HPCDASK_SGE_ROOT=/opt/hpcdask-sge-x HPCDASK_SGE_QMASTER_PORT=6544 \
#     HPCDASK_SGE_EXECD_PORT=6545 bash ci/sge-up.sh
#   HPCDASK_SGE_ROOT=/opt/hpcdask-sge-x bash ci/capture-sge-adapter-fixtures.sh
# Deletes every job it submitted before it exits (trap); takes ~30 s.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
G="$REPO/tests/fixtures/sge"
W="${HPCDASK_FIXTURE_WORK:-/tmp/hpcdask-sge-adapter-fixtures}"
SGE_ROOT="${HPCDASK_SGE_ROOT:-/opt/hpcdask-sge}"
SETTINGS="$SGE_ROOT/default/common/settings.sh"

[ -f "$SETTINGS" ] || { echo "capture: no $SETTINGS: run bash ci/sge-up.sh" >&2; exit 1; }
set +u   # SGE's settings.sh reads $MANPATH unguarded
# shellcheck disable=SC1090
. "$SETTINGS"
set -u
[ "$(command -v qsub)" = "$SGE_ROOT/bin/lx-amd64/qsub" ] || { echo "capture: qsub is not SGE's" >&2; exit 1; }
if [ -n "$(qstat -u '*')" ]; then
    echo "capture: SGE already holds jobs; capture needs an empty queue" >&2
    exit 1
fi
mkdir -p "$G"
rm -rf "$W"
mkdir -p "$W/out"
cd "$W"
: >commands.tsv
: >ids.tsv

. "$REPO/ci/capture-lib.sh"
EXECD_PID="$(sge_execd_pid)"
MINE="$W/mine.txt"
: >"$MINE"
cleanup() {
    kill -CONT "$EXECD_PID" 2>/dev/null || true   # never leave execd stopped
    # shellcheck disable=SC2046
    [ ! -s "$MINE" ] || qdel $(cat "$MINE") >/dev/null 2>&1 || true
}
trap cleanup EXIT

run() { capture "$G" "$@"; }   # run NAME CMD... into $G
sub() {   # sub WHAT ARGS...: qsub -terse; remember and print the (base) id
    local out
    out="$(qsub -terse -o "$W/out" -e "$W/out" "${@:2}")"
    echo "${out%%.*}" >>"$MINE"
    printf '%s\t%s\n' "$1" "$out" >>ids.tsv
    echo "${out%%.*}"
}
state() { qstat -u '*' | awk -v id="$1" '$1 == id {print $5}' | sort -u | tr '\n' ' '; }
wait_gone() {
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

printf '#!/bin/sh\necho hello\n' >ok.sh
printf '#!/bin/sh\nsleep 600\n' >sleep.sh
printf '#!/bin/sh\necho "about to fail" >&2\nexit 3\n' >fail.sh
chmod +x ok.sh sleep.sh fail.sh
started="$(date +%Y%m%d%H%M.%S)"

# ------------------------------------------- the poll: qstat -xml -r
R=$(sub "running: -pe smp 2, h_rt 600, -P hpcdask" -N hx-r-running -pe smp 2 -l h_rt=600 -P hpcdask sleep.sh)
A=$(sub "array 1-3 -tc 1: h_rt 0:10:0, h_vmem 1G" -N hx-r-arr -t 1-3 -tc 1 -l h_rt=0:10:0,h_vmem=1G sleep.sh)
P=$(sub "pending in down.q, h_rt 60, -ac context" -N hx-r-pending -q down.q -l h_rt=60 -ac hpcdask_cluster=3f2a9c sleep.sh)
H=$(sub "held" -N hx-r-held -h sleep.sh)
E=$(sub "Eqw: -o into a missing directory" -N hx-r-eqw -o /nonexistent/dir/out sleep.sh)
EA=$(sub "array 1-2, both tasks Eqw" -N hx-r-eqw-arr -t 1-2 -o '/nonexistent/$TASK_ID' sleep.sh)
wait_state "$R" '^r $' 20
wait_state "$A" '^qw r $' 20
wait_state "$E" '^Eqw $' 20
wait_state "$EA" '^Eqw $' 20
sleep 1
run qstat_xml_r_mixed qstat -xml -r
run qstat_xml_r_user qstat -xml -r -u root
run qstat_j_eqw_many qstat -j "$E,$EA"
run qstat_j_context qstat -j "$P"
run qdel_eqw_tasks qdel "$EA.1" "$EA.2" "$E"
qdel "$R" "$A" "$P" "$H" >/dev/null
wait_gone "$R" "$A" "$P" "$H" "$E" "$EA"

# ---------------------------------- transferring: execd does not answer
kill -STOP "$EXECD_PID"
T=$(sub "transferring (execd stopped)" -N hx-r-transfer sleep.sh)
wait_state "$T" '^t $' 15 || { kill -CONT "$EXECD_PID"; exit 1; }
run qstat_xml_r_transferring qstat -xml -r
kill -CONT "$EXECD_PID"
wait_state "$T" '^r $' 20
qdel "$T" >/dev/null
wait_gone "$T"

# ----------------------------------------------- qdel by user and name
N1=$(sub "named hx-same (1)" -N hx-same -q down.q sleep.sh)
N2=$(sub "named hx-same (2)" -N hx-same -q down.q sleep.sh)
wait_state "$N2" '^qw $' 10
run qdel_user_name qdel -u root hx-same
wait_gone "$N1" "$N2"
run qdel_user_name_none qdel -u root hx-same

# ------------------- qacct: every job of the user that ended since a time
C=$(sub "completed" -N hx-q-done ok.sh)
F=$(sub "failed (exit 3)" -N hx-q-failed fail.sh)
AC=$(sub "array 1-2 completed" -N hx-q-arr -t 1-2 ok.sh)
K=$(sub "killed at h_rt=0:0:2" -N hx-q-h-rt -l h_rt=0:0:2 sleep.sh)
wait_gone "$C" "$F" "$AC" "$K"
for _ in $(seq 50); do
    [ "$(qacct -o root -E -b "$started" -j 2>/dev/null | grep -c '^jobnumber')" -ge 5 ] && break
    sleep 0.2
done
run qacct_owner_since qacct -o root -E -b "$started" -j
run qacct_owner_since_none qacct -o root -E -b 203001010000 -j
run qacct_no_file qacct -f /nonexistent/accounting -o root -j

: >"$MINE"
echo "captured into $G; commands in $W/commands.tsv, job ids in $W/ids.tsv"
