"""Multi-node jobs and the workers' interface, from options alone (pure)."""

from __future__ import annotations

import shlex

import pytest

from hpcdask.config import adaptive_settings, resolve_job_options
from hpcdask.cost import job_resources, parse_job_resources
from hpcdask.errors import InvalidOptionError
from hpcdask.jobs import JobTable, worker_suffixes
from hpcdask.network import PREFLIGHT
from hpcdask.options import JobOptions
from hpcdask.runner import Completed, FakeRunner
from hpcdask.script import render_job_script
from hpcdask.systems.base import CommandBackend
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm

ADDRESS = "tls://10.77.0.1:8786"
TLS = ["--tls-ca-file", "/s/ca.pem", "--tls-cert", "/s/cert.pem", "--tls-key", "/s/key.pem"]  # fmt: skip


def options(system: str = "slurm", **kwargs: object) -> JobOptions:
    values: dict[str, object] = {"cores": 8, "memory": "16GiB", "processes": 2}
    values.update(kwargs)
    return resolve_job_options(system, log_directory="/logs", **values)


def commands(script: str) -> list[str]:
    """The script's commands, the pre-flight source shown as ``PREFLIGHT``."""
    body = script.replace(shlex.quote(PREFLIGHT), "PREFLIGHT").splitlines()
    return [line for line in body if line and not line.startswith("#")]


@pytest.mark.parametrize("value", [0, -1, "2", "2;rm -rf ~", 1.5, True, None])
def test_bad_nodes_are_refused_by_name(value: object) -> None:
    # None is a config value that is not a number, once the default is past
    kwargs = {"nodes": value} if value is not None else {"nodes": "x"}
    with pytest.raises(InvalidOptionError, match="nodes"):
        options(**kwargs)


def test_nodes_default_and_config() -> None:
    import dask.config

    assert options().nodes == 1
    with dask.config.set({"hpcdask.slurm.nodes": 4}):
        assert options().nodes == 4
        assert options(nodes=2).nodes == 2  # the argument wins


def test_the_local_backend_is_one_host() -> None:
    with pytest.raises(InvalidOptionError, match=r"nodes.*local backend"):
        options("local", nodes=2)


@pytest.mark.parametrize("value", ["ib0;reboot", "eth 0", "$(id)", ""])
def test_bad_worker_interface_is_refused_by_name(value: str) -> None:
    with pytest.raises(InvalidOptionError, match="worker_interface"):
        options(worker_interface=value)


def test_per_job_totals() -> None:
    opts = options(nodes=3)
    assert (opts.workers_per_job, opts.cores_per_job) == (6, 24)
    assert opts.memory_per_job == 3 * 16 * 2**30
    # per worker: as on one node
    assert (opts.threads_per_worker, opts.memory_per_worker) == (4, 8 * 2**30)


def test_slurm_two_node_script() -> None:
    opts = options(nodes=2, queue="batch")
    script = render_job_script(
        opts, Slurm(), ADDRESS, ["dask-worker-3"], TLS, workdir="/home/u"
    )
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives[:6] == [
        "#SBATCH -J dask-worker",
        "#SBATCH -p batch",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=8",  # per node
        "#SBATCH --mem=16384M",  # per node
    ]
    assert "#SBATCH -n 1" not in script
    check, workers = commands(script)[-2:]
    srun = "srun --ntasks-per-node=1 --cpus-per-task=8"
    # the check runs on every node (each to its end), then the workers do
    assert check == (
        f"{srun} {opts.python} -c PREFLIGHT {ADDRESS} 10 - "
        "/s/ca.pem /s/cert.pem /s/key.pem || exit 1"
    )
    words = shlex.split(workers)
    # the workers of a job live and die together
    assert workers.startswith(f"{srun} --kill-on-bad-exit=1 bash -c ")
    # a shell on each node names its workers JOB-<node index>
    assert words[4:8] == [
        "bash", "-c", 'exec "$@" --name "$0-$SLURM_NODEID"', "dask-worker-3"
    ]  # fmt: skip
    assert words[8:11] == [opts.python, "-m", "distributed.cli.dask_worker"]
    assert "--name" not in words[8:]
    assert words[words.index("--nworkers") + 1] == "2"  # per node
    assert words[words.index("--nthreads") + 1] == "4"


def test_two_node_array_elements_name_their_own_workers() -> None:
    script = render_job_script(
        options(nodes=2), Slurm(), ADDRESS, ["dask-worker-0", "dask-worker-1"]
    )
    assert "#SBATCH --array=0-1" in script
    workers = commands(script)[-1]
    assert '--name "$0-$SLURM_NODEID"\' "${HPCDASK_NAMES[$HPCDASK_ARRAY_INDEX]}" ' in (
        workers
    )


def test_one_node_script_is_unchanged_but_for_the_check() -> None:
    script = render_job_script(options(), Slurm(), ADDRESS, ["w"], TLS)
    assert "#SBATCH -n 1" in script and "--nodes" not in script
    assert "srun" not in script and "bash -c" not in script
    check, workers = commands(script)[-2:]
    assert check.endswith(
        f"-c PREFLIGHT {ADDRESS} 10 - /s/ca.pem /s/cert.pem /s/key.pem || exit 1"
    )
    assert " --name w " in workers


def test_pbs_two_node_script() -> None:
    opts = options("pbs", nodes=2)
    script = render_job_script(
        opts, PBS(), ADDRESS, ["dask-worker-3"], workdir="/home/u/nb"
    )
    assert "#PBS -l select=2:ncpus=8:mem=16384mb" in script
    assert "#PBS -l place=scatter" in script
    check, workers = commands(script)[-2:]
    assert check == f"pbsdsh -- {opts.python} -c PREFLIGHT {ADDRESS} 10 - || exit 1"
    words = shlex.split(workers)
    # pbsdsh starts tasks in the job's first environment, in the home directory
    assert words[:9] == [
        "pbsdsh", "--", "/usr/bin/env",
        "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD=fork",
        "/bin/bash", "-c",
        'cd "$1" && shift && exec "$@" --name "$0-$PBS_VNODENUM"',
        "dask-worker-3", "/home/u/nb",
    ]  # fmt: skip
    assert words[9:12] == [opts.python, "-m", "distributed.cli.dask_worker"]


def test_pbs_resource_spec_is_the_users() -> None:
    opts = options("pbs", nodes=2, resource_spec="nodes=2:ppn=8")
    script = render_job_script(opts, PBS(), ADDRESS, ["w"])
    assert "#PBS -l nodes=2:ppn=8" in script
    assert "place=scatter" not in script and "select" not in script


@pytest.mark.parametrize(
    ("nodes", "processes", "suffixes"),
    [
        (1, 1, [""]),
        (1, 2, ["-0", "-1"]),
        (2, 1, ["-0", "-1"]),
        (2, 2, ["-0-0", "-0-1", "-1-0", "-1-1"]),
    ],
)
def test_worker_suffixes(nodes: int, processes: int, suffixes: list[str]) -> None:
    opts = options(cores=2, nodes=nodes, processes=processes)
    assert worker_suffixes(opts) == suffixes
    assert len(suffixes) == opts.workers_per_job


async def test_workers_of_every_node_map_back_to_their_job() -> None:
    opts = options(nodes=2, processes=2)
    runner = FakeRunner({"sbatch": [Completed(("sbatch",), 0, "7\n", "")]})
    table = JobTable(CommandBackend(Slurm(), runner), opts)
    records = await table.submit(["dask-worker-1", "dask-worker-12"], "")
    one, twelve = records
    for suffix in worker_suffixes(opts):
        assert table.job_of_worker("dask-worker-1" + suffix) is one
        assert table.job_of_worker("dask-worker-12" + suffix) is twelve
    assert table.job_of_worker("dask-worker-2-0-0") is None
    for suffix in worker_suffixes(opts):
        table.note_worker("dask-worker-12" + suffix, connected=True)
    assert len(twelve.workers) == 4 and not one.workers


async def test_templated_names_map_back_from_every_node() -> None:
    opts = options(nodes=2, processes=2, name="run-$SLURM_JOB_ID")
    runner = FakeRunner({"sbatch": [Completed(("sbatch",), 0, "8\n", "")]})
    table = JobTable(CommandBackend(Slurm(), runner), opts)
    (record,) = await table.submit(["run-$SLURM_JOB_ID-0"], "")
    assert table.job_of_worker("run-8-0-1-1") is record
    assert table.job_of_worker("run-8-0-1") is record


def test_core_hours_count_every_node() -> None:
    slurm = job_resources(options(nodes=2), Slurm())
    assert (slurm.cores, slurm.nodes) == (16, 2)
    pbs = job_resources(options("pbs", nodes=3), PBS())
    assert (pbs.cores, pbs.nodes) == (24, 3)
    one = job_resources(options(), Slurm())
    assert (one.cores, one.nodes) == (8, 1)
    # sbatch reads --ntasks over --ntasks-per-node
    both = parse_job_resources(
        ["#SBATCH -N 2", "#SBATCH --ntasks-per-node=4", "#SBATCH -n 3", "#SBATCH -c 2"],
        default_cores=1,
    )
    assert (both.cores, both.nodes) == (6, 2)


def test_scaling_bounds_count_whole_multi_node_jobs() -> None:
    opts = options(cores=4, memory="8GB", processes=2, nodes=2)  # 4 workers a job
    settings = adaptive_settings(opts, minimum=5, maximum=17, maximum_cores=40)
    assert settings.params.workers_per_job == 4
    assert settings.params.minimum_jobs == 2  # 5 workers: 2 jobs
    # 17 workers: 4 jobs; 40 cores at 8 a job: 5 jobs; the tightest wins
    assert settings.params.maximum_jobs == 4


class _Owner:
    def view(self) -> None: ...


@pytest.mark.parametrize(
    ("kwargs", "scheduler", "workers"),
    [
        # dask-jobqueue's meaning: the workers' and the scheduler's
        ({"interface": "ib0"}, {"interface": "ib0"}, "ib0"),
        # the login node's name for the network differs from the nodes'
        ({"interface": "hsn0", "scheduler_options": {"interface": "eth1"}},
         {"interface": "eth1"}, "hsn0"),
        ({"worker_interface": "hsn0", "scheduler_options": {"host": "10.0.0.1"}},
         {"host": "10.0.0.1"}, "hsn0"),
        # host and interface together would be distributed's ValueError
        ({"interface": "ib0", "scheduler_options": {"host": "10.0.0.1"}},
         {"host": "10.0.0.1"}, "ib0"),
        ({"interface": "ib0", "worker_interface": "ib1"}, {"interface": "ib0"}, "ib1"),
        ({}, {}, None),  # the scheduler on all interfaces, workers on theirs
    ],
)  # fmt: skip
def test_interfaces(
    kwargs: dict[str, object], scheduler: dict[str, object], workers: str | None
) -> None:
    from hpcdask.dashboard import HPCDashboard
    from hpcdask.schedulerargs import scheduler_options

    opts = options(**kwargs)
    chosen = scheduler_options(opts, None, HPCDashboard(_Owner().view, None))
    assert {k: chosen[k] for k in ("host", "interface") if k in chosen} == scheduler
    words = shlex.split(commands(render_job_script(opts, Slurm(), ADDRESS, ["w"]))[-1])
    found = words[words.index("--interface") + 1] if "--interface" in words else None
    assert found == workers
