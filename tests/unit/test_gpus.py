"""GPUs per job and node: options, directives, worker resources, one GPU set
per worker process, and what they are charged. Pure: the pinning shell runs in
bash with a stand-in worker command."""

from __future__ import annotations

import os
import subprocess

import pytest

from hpcdask.config import resolve_job_options
from hpcdask.cost import job_resources
from hpcdask.errors import InvalidOptionError
from hpcdask.script import render_job_script, worker_argv
from hpcdask.systems.pbs import PBS
from hpcdask.systems.slurm import Slurm


def slurm(**kwargs: object):  # type: ignore[no-untyped-def]
    return resolve_job_options("slurm", cores=8, memory="32GB", **kwargs)


def test_one_worker_per_gpu_by_default_each_advertising_its_gpu() -> None:
    opts = slurm(gpus=4)
    assert (opts.processes, opts.threads_per_worker) == (4, 2)
    assert opts.worker_resources == {"GPU": 1.0}
    # fewer cores than GPUs: the largest share that divides them equally
    assert resolve_job_options("slurm", cores=3, memory="1GB", gpus=4).processes == 2
    # processes given: each worker gets gpus / processes of them
    two = slurm(gpus=4, processes=2)
    assert (two.gpus_per_worker, two.worker_resources) == (2, {"GPU": 2.0})
    # no GPUs: no resources, processes as dask-jobqueue chooses them
    assert slurm().worker_resources == {} and slurm().processes == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": 3, "processes": 2}, r"gpus=3.*3 GPUs cannot be shared equally by 2"),
        ({"gpus": -1}, r"gpus=-1.*whole number"),
        ({"gpus": True}, r"gpus=True"),
        ({"resources": {"GPU": 0}}, r"resources=.*GPU: expected an amount > 0"),
        ({"resources": {"G PU": 1}}, r"bad resource name 'G PU'"),
        ({"resources": "GPU"}, r"expected NAME=AMOUNT"),
        (
            {"resources": {"GPU": 1}, "worker_extra_args": ["--resources", "GPU=1"]},
            r"given twice",
        ),
    ],
)
def test_bad_gpu_options_are_clear_errors(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        slurm(**kwargs)


@pytest.mark.parametrize("system", ["sge", "local"])
def test_systems_without_a_standard_gpu_request_refuse_gpus(system: str) -> None:
    with pytest.raises(InvalidOptionError, match=r"gpus=1"):
        resolve_job_options(system, cores=1, memory="1GB", gpus=1)


def test_resources_as_the_worker_writes_them() -> None:
    opts = slurm(resources="GPU=1, MEM=2e9")
    assert opts.worker_resources == {"GPU": 1.0, "MEM": 2e9}
    argv = worker_argv(opts, "tls://h:1", "w")
    assert argv[argv.index("--resources") + 1] == "GPU=1,MEM=2e+09"


def test_gpu_directives_and_charges() -> None:
    opts = slurm(gpus=2, nodes=2)
    script = render_job_script(opts, Slurm(), "tls://h:1", ["w-0"])
    assert "#SBATCH --gres=gpu:2" in script  # per node
    assert job_resources(opts, Slurm()).gpus == 4  # charged for both nodes
    pbs = resolve_job_options("pbs", cores=8, memory="32GB", gpus=2)
    assert "#PBS -l select=1:ncpus=8:mem=30518mb:ngpus=2" in render_job_script(
        pbs, PBS(), "tls://h:1", ["w-0"]
    )


def test_memory_per_gpu_or_cpu_sites_get_no_mem() -> None:
    for directive in ("--mem-per-gpu=8G", "--mem-per-cpu 2G"):
        opts = slurm(gpus=1, job_extra_directives=[directive])
        script = render_job_script(opts, Slurm(), "tls://h:1", ["w-0"])
        assert "--mem=" not in script and f"#SBATCH {directive}" in script
    assert "#SBATCH --mem=30518M" in render_job_script(
        slurm(gpus=1), Slurm(), "tls://h:1", ["w-0"]
    )


def run_start_line(
    script: str, granted: str | None
) -> subprocess.CompletedProcess[str]:
    """Run the worker start of ``script`` with a stand-in for python that prints
    what each worker would see."""
    start = script[script.index("bash -c 'name=") :]
    fake = "/bin/sh -c 'echo \"cvd=$CUDA_VISIBLE_DEVICES $*\"' python"
    start = start.replace("/fake/python -m distributed.cli.dask_worker", fake)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if granted is not None:
        env["CUDA_VISIBLE_DEVICES"] = granted
    return subprocess.run(
        ["bash", "-c", start], capture_output=True, text=True, env=env
    )


def test_each_worker_process_is_pinned_to_its_own_gpus() -> None:
    opts = slurm(gpus=4, processes=2, python="/fake/python")
    script = render_job_script(opts, Slurm(), "tls://h:1", ["job-0"])
    assert "--nworkers 1" in script and "--resources GPU=2" in script
    # the devices the queue granted, whatever their numbers
    done = run_start_line(script, "4,5,6,7")
    assert done.returncode == 0, done.stderr
    seen = sorted(done.stdout.split("\n")[:-1])
    assert [s.split()[0] for s in seen] == ["cvd=4,5", "cvd=6,7"]
    assert [s.split(" --name ")[1] for s in seen] == ["job-0-0", "job-0-1"]
    assert all("tls://h:1 --nthreads 4" in s for s in seen)
    # fewer than the workers need: the job fails, saying so
    short = run_start_line(script, "0")
    assert short.returncode == 1 and short.stdout == ""
    assert "job-0 was granted 1 GPU(s) (CUDA_VISIBLE_DEVICES=0);" in short.stderr
    assert "its 2 workers need 4" in short.stderr


def test_one_worker_keeps_every_gpu_of_its_job() -> None:
    opts = slurm(gpus=2, processes=1)
    script = render_job_script(opts, Slurm(), "tls://h:1", ["w-0"])
    assert "CUDA_VISIBLE_DEVICES" not in script  # the queue's own setting stays
    assert "--nworkers 1" in script and "--resources GPU=2" in script
