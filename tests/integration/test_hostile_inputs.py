"""Generated hostile values for every field that reaches a job script, a directive
or an argv: each is refused with a ValueError naming the field, or the script it
renders, run by a real bash, runs exactly the commands a harmless value runs.

How a script is run: every external command is missing (``PATH`` is an empty
directory), so bash hands each one to ``command_not_found_handle``, which records
its argv; a ``DEBUG`` trap (inherited by functions and subshells, ``set -T``)
records every simple command, builtins included. A value that smuggled in a
command (``;``, ``$(..)``, backticks, a newline...) shows as one more record or
one more traced command; a value that split into words shows as a longer argv.
Injected payloads call ``hpcdask_canary``, which must never be recorded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcdask.cli import check_job_name
from hpcdask.config import resolve_job_options
from hpcdask.errors import InvalidOptionError
from hpcdask.mpi.script import render_mpi_job_script
from hpcdask.network import PREFLIGHT
from hpcdask.options import JobOptions
from hpcdask.script import render_job_script
from hpcdask.security import placeholder_security_args
from hpcdask.systems.base import BatchSystem
from hpcdask.systems.pbs import PBS
from hpcdask.systems.sge import SGE
from hpcdask.systems.slurm import Slurm

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CANARY = "hpcdask_canary"
#: the job's environment; other variables are unset (and expand to nothing)
JOB_ENV = {"SLURM_JOB_ID": "42", "TMPDIR": "/scratch", "HOME": "/home/u"}
ADDRESS = "tls://10.0.0.1:8786"
SHELL_CHARS = [*";|&$(){}[]<>`'\"\\ \t\n\r*?~#!=:,@+%^/.-_", "\x00"]
INJECTIONS = [
    f"; {CANARY}",
    f"$({CANARY})",
    f"`{CANARY}`",
    f"\n{CANARY}",
    f"\r\n{CANARY}",
    f"| {CANARY}",
    f"&& {CANARY}",
    f"' ; {CANARY} ; '",
    f'" ; {CANARY} ; "',
    f"${{IFS}}{CANARY}",
    f"$'\\n{CANARY}'",
    f"\\\n{CANARY}",
    f"<({CANARY})",
    f"\\$({CANARY})",
    f"${{HOME:-$({CANARY})}}",
    f"$HOME`{CANARY}`",
    f" --wrap={CANARY}",
    "$((1+1))",
    "$HOME",
    "${TMPDIR}",
    "*",
    "~",
]
safe = st.text(alphabet="abcXYZ019_-.", max_size=6)
hostile = st.one_of(
    st.text(alphabet=st.sampled_from(SHELL_CHARS + list("ab1")), max_size=16),
    st.builds(lambda a, b, c: a + b + c, safe, st.sampled_from(INJECTIONS), safe),
)


def expand(value: str) -> str:
    """A regex of what the job's shell makes of a ``$NAME`` / ``${NAME}`` value
    (in double quotes: no word splitting). Variables bash sets itself as it
    goes (``$_``, ``$RANDOM``...) may be anything."""
    variables = {**JOB_ENV, "IFS": " \t\n"}
    parts = re.split(r"\$(?:\{(\w+)\}|(\w+))", value)
    pattern = re.escape(parts[0])
    for i in range(1, len(parts), 3):
        name = parts[i] or parts[i + 1]
        if name in variables:
            pattern += re.escape(variables[name])
        elif name == "_" or name.isupper():
            pattern += ".*"
        pattern += re.escape(parts[i + 2])
    return pattern


def same(pattern: str, actual: str) -> bool:
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


# -- running a script ----------------------------------------------------------------

PRELUDE = r"""
command_not_found_handle() {
    printf '%s\0' "$#" "$@" >>"$HPCDASK_RECORDS"
    return 0
}
set -T
trap '[[ ${FUNCNAME[0]-} == command_not_found_handle ]] || printf "%s\0" "$BASH_COMMAND" >>"$HPCDASK_TRACE"' DEBUG
. "$1"
"""


@dataclass
class Run:
    records: list[list[str]]
    trace: list[str]


_runs: dict[tuple[str, str, str], Run] = {}


def run_script(script: str, sandbox: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``script`` as described above; harmless scripts run once per test."""
    key = (script, str(sandbox), repr(sorted((env or {}).items())))
    if key in _runs:
        return _runs[key]
    run = _run_script(script, sandbox, env)
    if len(_runs) < 64 and "hpcdask_canary" not in script:
        _runs[key] = run
    return run


def _run_script(script: str, sandbox: Path, env: dict[str, str] | None) -> Run:
    work = Path(tempfile.mkdtemp(dir=sandbox))
    empty_bin = work / "bin"
    empty_bin.mkdir()
    path = work / "job.sh"
    path.write_text(script)
    records, trace = work / "records", work / "trace"
    records.touch()
    trace.touch()
    subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", PRELUDE, "job", str(path)],
        cwd=work,
        env={
            **JOB_ENV,
            **(env or {}),
            "PATH": str(empty_bin),
            "HPCDASK_RECORDS": str(records),
            "HPCDASK_TRACE": str(trace),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    fields = records.read_bytes().decode(errors="replace").split("\0")[:-1]
    calls = []
    while fields:
        count = int(fields.pop(0))
        calls.append(fields[:count])
        del fields[:count]
    steps = trace.read_bytes().decode(errors="replace").split("\0")[:-1]
    return Run(calls, steps)


# -- the options every example starts from -------------------------------------------

BASE: dict[str, Any] = {
    "cores": 2,
    "memory": "2GB",
    "processes": 1,
    "name": "w",
    "python": "hpcdask-python",  # no slash: the handler records it
    "local_directory": "/scratch/x",
    "interface": "ib0",
    "worker_extra_args": ["--resources", "GPU=1"],
    "queue": "debug",
    "account": "acct",
    "protocol": "tls://",
    "job_script_prologue": ["export A=1"],
    "job_script_epilogue": ["A=2"],
}
SYSTEMS: list[BatchSystem] = [Slurm(), PBS(), SGE()]


def options(system: BatchSystem, sandbox: Path, **changes: Any) -> JobOptions:
    kwargs = {
        **BASE,
        "log_directory": str(sandbox / "logs"),
        "shared_temp_directory": str(sandbox / "sec"),
        **changes,
    }
    return resolve_job_options(system.name, **kwargs)


def render(
    opts: JobOptions, system: BatchSystem, address: str = ADDRESS, array: bool = False
) -> str:
    names = [f"{opts.name}-0", f"{opts.name}-1"] if array else [f"{opts.name}-0"]
    return render_job_script(
        opts,
        system,
        address,
        names,
        placeholder_security_args(opts),
        workdir="/",
    )


def refused_or(field: str, make: Callable[[], Any]) -> Any:
    """``make()``, or None when it raised a ValueError that names ``field``."""
    try:
        return make()
    except InvalidOptionError as e:
        assert e.option == field, f"error names {e.option!r}, not {field!r}: {e}"
        assert str(e).startswith(f"invalid {field}=")
        return None


def ran_canary(run: Run) -> bool:
    """Whether a command named like the canary ran (as data in an argument it
    is harmless)."""
    return any(call[0] == CANARY for call in run.records if call)


def assert_same_commands(hostile: Run, baseline: Run, value: object) -> None:
    assert not ran_canary(hostile), (value, hostile.records)
    assert len(hostile.records) == len(baseline.records), (value, hostile.records)
    assert len(hostile.trace) == len(baseline.trace), (value, hostile.trace)


def is_check(call: list[str]) -> bool:
    """The job's check that the scheduler answers: ``python -c PREFLIGHT ...``."""
    return call[1:3] == ["-c", PREFLIGHT]


def worker_call(run: Run) -> list[str]:
    (call,) = [call for call in run.records if not is_check(call)]
    return call


def check_call(run: Run) -> list[str]:
    (call,) = [call for call in run.records if is_check(call)]
    return call


def check_worker_field(
    sandbox: Path, field: str, value: Any, flag: str, expected: Callable[[], str]
) -> None:
    for system in SYSTEMS:
        opts = refused_or(field, lambda s=system: options(s, sandbox, **{field: value}))
        if opts is None:
            return
        baseline = run_script(render(options(system, sandbox), system), sandbox)
        hostile = run_script(render(opts, system), sandbox)
        assert_same_commands(hostile, baseline, value)
        argv = worker_call(hostile)
        assert len(argv) == len(worker_call(baseline)), (value, argv)
        assert same(expected(), argv[argv.index(flag) + 1]), (value, argv)
        check = check_call(hostile)
        assert len(check) == len(check_call(baseline)), (value, check)


def is_builtin(name: str) -> bool:
    kind = subprocess.run(
        ["/bin/bash", "--norc", "-c", 'type -t -- "$1"', "bash", name],
        capture_output=True,
        text=True,
        env={"PATH": "/nonexistent"},
    ).stdout.strip()
    return kind == "builtin"


def test_the_harness_sees_an_injected_command(tmp_path: Path) -> None:
    opts = options(Slurm(), tmp_path)
    script = render(opts, Slurm())
    baseline = run_script(script, tmp_path)
    assert [call[:3] for call in baseline.records] == [
        ["hpcdask-python", "-c", PREFLIGHT],
        ["hpcdask-python", "-m", "distributed.cli.dask_worker"],
    ]
    # what an unquoted value would do: split into words, or run a command
    worker = next(line for line in script.splitlines() if " -m distributed" in line)
    for unsafe in (f"x; {CANARY}", f"$({CANARY})", "a b"):
        bad = script.replace(worker, worker.replace("/scratch/x", unsafe))
        run = run_script(bad, tmp_path)
        assert run.records != baseline.records
        if CANARY in unsafe:
            assert ran_canary(run)
            assert len(run.records) != len(baseline.records) or len(run.trace) != len(
                baseline.trace
            )
        else:
            assert len(worker_call(run)) == len(worker_call(baseline)) + 1
    # a builtin smuggled in shows in the trace
    bad = script.replace(worker, worker + "; A=3")
    assert len(run_script(bad, tmp_path).trace) == len(baseline.trace) + 1


# -- worker argv fields ------------------------------------------------------------------


@SETTINGS
@given(value=hostile)
def test_name(value: str, tmp_path: Path) -> None:
    check_worker_field(tmp_path, "name", value, "--name", lambda: expand(value) + "-0")
    # an array element picks its own name from the same words (SGE's tasks
    # count from 1)
    for system, task in (
        (Slurm(), {"SLURM_ARRAY_TASK_ID": "1"}),
        (SGE(), {"SGE_TASK_ID": "2"}),
    ):
        opts = refused_or("name", lambda s=system: options(s, tmp_path, name=value))
        if opts is not None:
            run = run_script(render(opts, system, array=True), tmp_path, task)
            argv = worker_call(run)
            assert same(expand(value) + "-1", argv[argv.index("--name") + 1])


@SETTINGS
@given(value=hostile)
def test_local_directory(value: str, tmp_path: Path) -> None:
    check_worker_field(
        tmp_path, "local_directory", value, "--local-directory", lambda: expand(value)
    )


@SETTINGS
@given(value=hostile)
def test_interface(value: str, tmp_path: Path) -> None:
    check_worker_field(
        tmp_path, "interface", value, "--interface", lambda: re.escape(value)
    )
    # the check looks for the same interface on the node
    opts = refused_or("interface", lambda: options(Slurm(), tmp_path, interface=value))
    if opts is not None:
        run = run_script(render(opts, Slurm()), tmp_path)
        assert check_call(run)[5] == value


@SETTINGS
@given(value=st.one_of(hostile, st.sampled_from(["tls", "tcp://", "ws://"])))
def test_protocol(value: str, tmp_path: Path) -> None:
    check_worker_field(
        tmp_path,
        "protocol",
        value,
        "--protocol",
        lambda: re.escape(value if value.endswith("://") else value + "://"),
    )


@SETTINGS
@given(value=st.one_of(hostile, st.sampled_from(["60", "1.5", "2min", "inf"])))
def test_death_timeout(value: str, tmp_path: Path) -> None:
    def expected() -> str:
        opts = options(Slurm(), tmp_path, death_timeout=value)
        return re.escape(f"{opts.death_timeout:g}")

    check_worker_field(tmp_path, "death_timeout", value, "--death-timeout", expected)


@SETTINGS
@given(value=hostile)
def test_python(value: str, tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = refused_or("python", lambda s=system: options(s, tmp_path, python=value))
        if opts is None:
            return
        baseline = run_script(render(options(system, tmp_path), system), tmp_path)
        hostile_run = run_script(render(opts, system), tmp_path)
        assert not ran_canary(hostile_run), (value, hostile_run.records)
        # the check runs first: a python that is a path (missing here, or this
        # interpreter, the default) runs without a PATH search, fails its check
        # (no scheduler here) and the script stops there
        check = next(i for i, step in enumerate(baseline.trace) if " -c " in step[:40])
        stopped = hostile_run.trace[check + 1 : check + 2] == ["exit 1"]
        steps = check + 2 if stopped else len(baseline.trace)
        assert len(hostile_run.trace) == steps, (value, hostile_run.trace)
        if not hostile_run.records:
            # a path runs (here: no such file) without a PATH search, and a
            # builtin (":") needs none: either way nothing is recorded
            # ($VARS may expand to a path)
            assert any(c in opts.python for c in "/$") or is_builtin(opts.python)
        else:
            argv = worker_call(hostile_run)
            assert same(expand(opts.python), argv[0]), (value, argv)
            assert len(argv) == len(worker_call(baseline))


@SETTINGS
@given(value=st.lists(st.one_of(hostile, safe), min_size=1, max_size=3))
def test_worker_extra_args(value: list[str], tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = refused_or(
            "worker_extra_args",
            lambda s=system: options(s, tmp_path, worker_extra_args=value),
        )
        if opts is None:
            return
        baseline = run_script(render(options(system, tmp_path), system), tmp_path)
        hostile_run = run_script(render(opts, system), tmp_path)
        assert_same_commands(hostile_run, baseline, value)
        # dask-jobqueue's meaning: each string is split like a command line
        words = [expand(w) for arg in value for w in shlex.split(arg)]
        argv = worker_call(hostile_run)
        tail = argv[len(argv) - len(words) :]
        assert len(tail) == len(words), (value, argv)
        assert all(same(w, a) for w, a in zip(words, tail, strict=True)), (value, argv)


@SETTINGS
@given(value=hostile)
def test_scheduler_address(value: str, tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = options(system, tmp_path)
        script = refused_or(
            "scheduler address", lambda o=opts, s=system: render(o, s, address=value)
        )
        if script is None:
            return
        baseline = run_script(render(opts, system), tmp_path)
        hostile_run = run_script(script, tmp_path)
        assert_same_commands(hostile_run, baseline, value)
        assert same(expand(value), worker_call(hostile_run)[3])
        assert same(expand(value), check_call(hostile_run)[3])


@SETTINGS
@given(value=hostile)
def test_shared_temp_directory(value: str, tmp_path: Path) -> None:
    directory = f"{tmp_path}/sec/{value}"
    check_worker_field(
        tmp_path,
        "shared_temp_directory",
        directory,
        "--tls-key",
        lambda: re.escape(os.path.join(directory, "cluster-XXXXXXXX", "key.pem")),
    )


# -- directives: comments to bash, options to the batch system ----------------------


def directive_lines(script: str, system: BatchSystem) -> list[str]:
    return [
        line for line in script.splitlines() if line.startswith(system.directive_prefix)
    ]


def body_lines(script: str, system: BatchSystem) -> list[str]:
    """The lines the shell runs: neither directives nor blank."""
    return [
        line
        for line in script.splitlines()
        if line and not line.startswith(system.directive_prefix)
    ]


def check_directive_field(
    sandbox: Path,
    field: str,
    value: Any,
    extra_lines: int = 0,
    same_body: bool = True,
) -> list[tuple[BatchSystem, JobOptions, str]]:
    """Render with ``field=value``; return the scripts that were accepted.

    With ``same_body`` the shell's part of the script must be the harmless
    one's, word for word; without (sizes and times also set the worker's
    memory limit and lifetime, the log directory its output files) it must run
    the same commands with an argv as long.
    """
    accepted = []
    for system in SYSTEMS:
        opts = refused_or(field, lambda s=system: options(s, sandbox, **{field: value}))
        if opts is None:
            continue
        base_script = render(options(system, sandbox), system)
        script = render(opts, system)
        if same_body:
            assert body_lines(script, system) == body_lines(base_script, system)
        # each directive is one line (SGE asks for no resources unless given
        # resource_spec: one line more)
        more = int(system.name == "sge" and field == "resource_spec")
        assert (
            len(directive_lines(script, system))
            == len(directive_lines(base_script, system)) + extra_lines + more
        ), value
        hostile_run = run_script(script, sandbox)
        baseline = run_script(base_script, sandbox)
        assert_same_commands(hostile_run, baseline, value)
        assert len(worker_call(hostile_run)) == len(worker_call(baseline))
        accepted.append((system, opts, script))
    return accepted


@pytest.mark.parametrize("field", ["queue", "account", "job_name"])
@SETTINGS
@given(value=hostile)
def test_identifier_directives(field: str, value: str, tmp_path: Path) -> None:
    same_body = field != "job_name"  # PBS names its log files after the job
    for system, opts, script in check_directive_field(
        tmp_path, field, value, same_body=same_body
    ):
        # the value is one word of its directive: no option smuggled to sbatch/qsub
        flag = {
            "queue": {"slurm": "-p", "pbs": "-q", "sge": "-q"},
            "account": {"slurm": "-A", "pbs": "-A", "sge": "-A"},
            "job_name": {"slurm": "-J", "pbs": "-N", "sge": "-N"},
        }
        wanted = flag[field][system.name]
        line = f"{system.directive_prefix} {wanted} {getattr(opts, field)}"
        assert line in script.splitlines()
        assert len(line.split()) == 3


@pytest.mark.parametrize(
    ("field", "flag"), [("project", "-P"), ("parallel_environment", "-pe")]
)
@SETTINGS
@given(value=hostile)
def test_sge_directives(field: str, flag: str, value: str, tmp_path: Path) -> None:
    # SGE's own options, one word of a directive (the parallel environment
    # is refused for the other systems; their project is account's old name)
    if field == "parallel_environment":
        for other in (Slurm(), PBS()):
            with pytest.raises(InvalidOptionError):
                options(other, tmp_path, parallel_environment=value or "x")
    opts = refused_or(field, lambda: options(SGE(), tmp_path, **{field: value}))
    if opts is None:
        return
    base_script = render(options(SGE(), tmp_path), SGE())
    script = render(opts, SGE())
    assert body_lines(script, SGE()) == body_lines(base_script, SGE())
    line = f"#$ {flag} {getattr(opts, field)}"
    if field == "parallel_environment":
        line += f" {opts.cores}"
    assert line in script.splitlines()
    assert len(line.split()) == (4 if field == "parallel_environment" else 3)
    assert_same_commands(
        run_script(script, tmp_path), run_script(base_script, tmp_path), value
    )


@pytest.mark.parametrize(
    ("field", "good"),
    [
        ("memory", ["1GB", "512MiB", "3 GB"]),
        ("job_mem", ["1GB"]),
        ("walltime", ["00:10:00", "30", "1-00:00", "2h"]),
        ("cores", ["4"]),
        ("processes", ["1"]),
        ("job_cpu", ["2"]),
        ("resource_spec", ["select=1:ncpus=2"]),
    ],
)
@SETTINGS
@given(data=st.data())
def test_sized_directives(
    field: str, good: list[str], data: Any, tmp_path: Path
) -> None:
    value = data.draw(
        st.one_of(
            hostile,
            st.builds(lambda g, h: g + h, st.sampled_from(good), hostile),
        )
    )
    check_directive_field(tmp_path, field, value, same_body=False)


@SETTINGS
@given(value=st.lists(hostile, min_size=1, max_size=3))
def test_job_extra_directives(value: list[str], tmp_path: Path) -> None:
    for system, _, script in check_directive_field(
        tmp_path, "job_extra_directives", value, extra_lines=len(value)
    ):
        lines = script.splitlines()
        for directive in value:
            assert f"{system.directive_prefix} {directive}" in lines


@SETTINGS
@given(value=st.lists(hostile, min_size=1, max_size=2))
def test_job_directives_skip(value: list[str], tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = refused_or(
            "job_directives_skip",
            lambda s=system: options(s, tmp_path, job_directives_skip=value),
        )
        if opts is None:
            return
        base_script = render(options(system, tmp_path), system)
        script = render(opts, system)
        # skipping only ever removes directive lines
        assert body_lines(script, system) == body_lines(base_script, system)
        assert set(directive_lines(script, system)) <= set(
            directive_lines(base_script, system)
        )


@SETTINGS
@given(value=st.one_of(hostile, st.builds(lambda h: "#!/bin/bash" + h, hostile)))
def test_shebang(value: str, tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = refused_or(
            "shebang", lambda s=system: options(s, tmp_path, shebang=value)
        )
        if opts is None:
            return
        base = render(options(system, tmp_path), system).splitlines()
        lines = render(opts, system).splitlines()
        assert lines[0] == value and lines[1:] == base[1:]


@SETTINGS
@given(value=hostile.filter(lambda v: ".." not in v))
def test_log_directory(value: str, tmp_path: Path) -> None:
    # inside the sandbox: PBS scripts redirect their output there
    directory = f"{tmp_path}/logs/{value}"
    accepted = check_directive_field_made(tmp_path, "log_directory", directory)
    for system, opts, _ in accepted:
        stdout, _ = system.log_paths(opts, "42")
        assert os.path.dirname(stdout) == directory.rstrip("/")


def check_directive_field_made(
    sandbox: Path, field: str, directory: str
) -> list[tuple[BatchSystem, JobOptions, str]]:
    try:
        options(Slurm(), sandbox, **{field: directory})
    except InvalidOptionError as e:
        assert e.option == field
        return []
    os.makedirs(directory, exist_ok=True)
    return check_directive_field(sandbox, field, directory, same_body=False)


# -- shell code by design: the prologue and epilogue ----------------------------------


@pytest.mark.parametrize("field", ["job_script_prologue", "job_script_epilogue"])
@SETTINGS
@given(value=st.lists(hostile, min_size=1, max_size=3))
def test_prologue_and_epilogue_stay_the_lines_given(
    field: str, value: list[str], tmp_path: Path
) -> None:
    # these are the user's own shell lines (``module load ...``); what can be
    # checked is that N entries are exactly N lines, where they belong
    for system in SYSTEMS:
        opts = refused_or(
            field, lambda s=system: options(s, tmp_path, **{field: value})
        )
        if opts is None:
            return
        lines = render(opts, system).splitlines()
        worker = next(i for i, line in enumerate(lines) if " -m distributed." in line)
        # the prologue comes before the check that the scheduler answers (its
        # Python source is a word of several lines), the epilogue after the workers
        check = next(i for i, line in enumerate(lines) if " -c 'import " in line)
        if field == "job_script_prologue":
            assert lines[check - len(value) : check] == value
        else:
            assert lines[worker + 1 :] == value
        base = render(options(system, tmp_path, **{field: []}), system).splitlines()
        assert len(lines) == len(base) + len(value)


# -- the MPI launcher's script, and the hpcdask command's argv -----------------------


@SETTINGS
@given(script=hostile, args=st.lists(st.one_of(hostile, safe), max_size=3))
def test_mpi_script_and_args(script: str, args: list[str], tmp_path: Path) -> None:
    for system in SYSTEMS:
        opts = options(system, tmp_path)
        text = refused_or_any(
            ("script", "args"),
            lambda o=opts, s=system: render_mpi_job_script(o, s, script, args),
        )
        if text is None:
            return
        baseline = run_script(render_mpi_job_script(opts, system, "a.py"), tmp_path)
        hostile_run = run_script(text, tmp_path)
        assert_same_commands(hostile_run, baseline, (script, args))
        argv = worker_call(hostile_run)
        assert argv[0] == "mpirun"
        tail = [expand(script), *(expand(a) for a in args)]
        got = argv[len(argv) - len(tail) :]
        assert all(same(w, a) for w, a in zip(tail, got, strict=True)), argv


def refused_or_any(fields: Sequence[str], make: Callable[[], Any]) -> Any:
    try:
        return make()
    except InvalidOptionError as e:
        assert e.option in fields, str(e)
        return None


@SETTINGS
@given(value=hostile)
def test_cancel_by_name(value: str) -> None:
    name = refused_or("name", lambda: check_job_name(value))
    if name is not None:
        assert name == value
        assert "," not in value and value.strip() == value
