# The pieces every ci/capture-*.sh script shares (sourced, never run). The
# sourcing script defines `state ID` (a job's state words, as its batch system
# prints them) and runs from its scratch directory, where commands.tsv is kept.

# capture DIR NAME CMD... : stdout -> DIR/NAME.txt, stderr -> DIR/NAME.stderr
# (kept only when not empty); appends "DIR's last part/NAME<TAB>rc<TAB>command"
# to commands.tsv. A failing command is recorded, never fatal: its exit code is
# part of what is captured.
capture() {
    local dir=$1 name=$2 rc=0
    shift 2
    "$@" >"$dir/$name.txt" 2>"$dir/$name.stderr" || rc=$?
    [ -s "$dir/$name.stderr" ] || rm -f "$dir/$name.stderr"
    printf '%s\t%s\t%s\n' "$(basename "$dir")/$name" "$rc" "$*" >>commands.tsv
    return 0
}

# wait_state ID 'REGEX' SECONDS : until `state ID` matches REGEX, polling five
# times a second; fails naming the state it last saw
wait_state() {
    local i
    for i in $(seq $(($3 * 5))); do
        [[ "$(state "$1")" =~ $2 ]] && return 0
        sleep 0.2
    done
    echo "capture: job $1 state '$(state "$1")' never matched $2" >&2
    return 1
}

# sge_execd_pid : the pid of SGE's execd (from its spool), or fail
sge_execd_pid() {
    local f pid=""
    for f in "$SGE_ROOT"/default/spool/*/execd.pid; do
        [ -f "$f" ] && pid="$(cat "$f")"
    done
    [ -n "$pid" ] || { echo "capture: no execd pid file" >&2; return 1; }
    echo "$pid"
}
