"""Site profiles from dask config: parsing, errors that name the problem, from_profile."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml

from hpcdask import HPCCluster, InvalidOptionError, PBSCluster, SLURMCluster
from hpcdask.profiles import load_profile, load_profiles, profile_names

PROFILES: dict[str, Any] = {
    "small": {
        "description": "2 cores, 4 GB, 8 hours",
        "system": "slurm",
        "queue": "shared",
        "cores": 2,
        "memory": "4GB",
        "walltime": "08:00:00",
        "account": "P12345",
    },
    "gpu-small": {
        "system": "slurm",
        "queue": "gpu",
        "cores": 8,
        "memory": "32GB",
        "directives": ["--gres=gpu:1"],
        "job-script-prologue": ["module load cuda"],
    },
    "pbs-normal": {"system": "pbs", "queue": "normal", "cores": 4, "memory": "8GB"},
    "anywhere": {"cores": 1, "memory": "1GB"},
}


@pytest.fixture
def profiles() -> Iterator[None]:
    with dask.config.set({"hpcdask.profiles": PROFILES}):
        yield


@pytest.mark.usefixtures("profiles")
def test_profiles_are_listed_and_parsed() -> None:
    assert profile_names() == ["anywhere", "gpu-small", "pbs-normal", "small"]
    small = load_profile("small")
    assert small.system == "slurm"
    assert small.description == "2 cores, 4 GB, 8 hours"
    assert dict(small.options) == {
        "queue": "shared",
        "cores": 2,
        "memory": "4GB",
        "walltime": "08:00:00",
        "account": "P12345",
    }
    gpu = load_profile("gpu-small")
    # "directives" are job_extra_directives; "-" spellings are options too
    assert gpu.options["job_extra_directives"] == ["--gres=gpu:1"]
    assert gpu.options["job_script_prologue"] == ["module load cuda"]
    assert [p.name for p in load_profiles()] == profile_names()


@pytest.mark.usefixtures("profiles")
def test_profile_job_options_are_validated_and_overridable() -> None:
    opts = load_profile("small").job_options()
    assert (opts.system, opts.queue, opts.cores, opts.walltime) == (
        "slurm",
        "shared",
        2,
        8 * 3600,
    )
    assert opts.memory == 4 * 10**9
    opts = load_profile("small").job_options(walltime="00:10:00", cores=4)
    assert (opts.walltime, opts.cores) == (600, 4)
    assert load_profile("gpu-small").job_options().job_extra_directives == (
        "--gres=gpu:1",
    )
    # a profile without a system takes the cluster class's
    assert load_profile("anywhere").job_options("pbs").system == "pbs"


@pytest.mark.usefixtures("profiles")
def test_profile_fills_in_from_system_config() -> None:
    with dask.config.set(
        {"hpcdask.slurm.account": "from-config", "hpcdask.slurm.processes": 1}
    ):
        opts = load_profile("gpu-small").job_options()
    assert opts.account == "from-config"
    assert opts.processes == 1


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (
            {"system": "slurm", "cores": 1, "tpus": 2},
            r"hpcdask\.profiles\.bad\.tpus=2: unknown profile key",
        ),
        (
            {"system": "slurm", "queu": "x"},
            r"hpcdask\.profiles\.bad\.queu='x': unknown profile key; did you mean 'queue'",
        ),
        (
            {"system": "lsf", "cores": 1},
            r"hpcdask\.profiles\.bad\.system='lsf': unknown system; expected one of slurm, pbs, sge, local",
        ),
        (
            {"directives": ["-C a"], "job_extra_directives": ["-C b"]},
            r"given twice",
        ),
        ({"job-name": "a", "job_name": "b"}, r"given twice"),
        (["not", "a", "mapping"], r"hpcdask\.profiles\.bad=.*expected a mapping"),
        (
            {"scheduler_in": "login"},
            r"hpcdask\.profiles\.bad\.scheduler_in='login'.*expected one of",
        ),
        (
            {"scheduler-job": {"cores": 0}},
            r"hpcdask\.profiles\.bad\.scheduler-job=.*scheduler_job\.cores",
        ),
        ({"scheduler_job": "big"}, r"scheduler_job.*expected a mapping"),
        ({"pools": ["gpu"]}, r"hpcdask\.profiles\.bad\.pools=.*expected \{name"),
        ({"pools": {"GPU": {}}}, r"hpcdask\.profiles\.bad\.pools=.*lower-case"),
        ({"pools": {"default": {}}}, r"bad\.pools=.*own pool is 'default'"),
        (
            {"pools": {"gpu": {"gpu": 1}}},
            r"hpcdask\.profiles\.bad\.pools\.gpu\.gpu=1: not a job option; did you mean 'gpus'",
        ),
    ],
)
def test_bad_profiles_are_clear_errors(profile: Any, message: str) -> None:
    with (
        dask.config.set({"hpcdask.profiles": {"bad": profile}}),
        pytest.raises(InvalidOptionError, match=message),
    ):
        load_profile("bad")


@pytest.mark.usefixtures("profiles")
def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(
        InvalidOptionError,
        match=r"invalid profile='nope': no such profile .*known: anywhere, gpu-small",
    ):
        load_profile("nope")
    with (
        dask.config.set({"hpcdask.profiles": {}}),
        pytest.raises(InvalidOptionError, match="none are configured"),
    ):
        load_profile("small")


@pytest.mark.usefixtures("profiles")
def test_from_profile_refuses_a_profile_of_another_system() -> None:
    # checked before any scheduler starts
    with pytest.raises(InvalidOptionError, match="this profile is for pbs, not slurm"):
        SLURMCluster.from_profile("pbs-normal")
    with pytest.raises(InvalidOptionError, match="this profile is for slurm, not pbs"):
        PBSCluster.from_profile("small")
    with pytest.raises(InvalidOptionError, match="names no system"):
        HPCCluster.from_profile("anywhere")


@pytest.mark.usefixtures("profiles")
def test_from_profile_bad_value_is_the_option_error() -> None:
    with (
        dask.config.set({"hpcdask.profiles.small.queue": "shared;rm -rf ~"}),
        pytest.raises(InvalidOptionError, match="invalid queue="),
    ):
        SLURMCluster.from_profile("small")


@pytest.mark.usefixtures("profiles")
async def test_from_profile_builds_the_class_of_the_profile_system() -> None:
    async with HPCCluster.from_profile(
        "small", asynchronous=True, walltime="00:05:00"
    ) as cluster:
        assert type(cluster) is SLURMCluster
        opts = cluster.job_options
        assert (opts.queue, opts.cores, opts.account) == ("shared", 2, "P12345")
        assert opts.walltime == 300  # the argument overrides the profile
        script = cluster.job_script()
        assert "#SBATCH -p shared" in script and "#SBATCH -A P12345" in script
    async with SLURMCluster.from_profile("gpu-small", asynchronous=True) as cluster:
        assert "#SBATCH --gres=gpu:1" in cluster.job_script()
        assert cluster.usage().gpus_in_use == 0


def test_the_documented_example_profiles_are_valid() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
    block = re.search(r"```yaml\n(.*?)```", docs.read_text(), re.S)
    assert block is not None
    config = yaml.safe_load(block.group(1))
    with dask.config.set({"hpcdask.profiles": config["hpcdask"]["profiles"]}):
        assert profile_names() == ["gpu-small", "pbs-normal", "small"]
        gpu = load_profile("gpu-small").job_options()
        assert gpu.job_extra_directives == ("--gres=gpu:a100:1",)
        assert gpu.job_script_prologue == ("module load cuda",)
        assert load_profile("pbs-normal").job_options().processes == 6


def test_a_profile_may_put_the_scheduler_in_a_job() -> None:
    site = {"system": "slurm", "cores": 2, "memory": "2GB", "scheduler_in": "job"}
    site["scheduler-job"] = {"queue": "debug", "idle-timeout": "1 hour"}
    with dask.config.set({"hpcdask.profiles": {"kept": site}}):
        profile = load_profile("kept")
        # job options stay job options; the scheduler's place goes to the class
        assert profile.job_options().cores == 2
        kwargs = profile.cluster_kwargs(cores=4)
    assert kwargs["scheduler_in"] == "job" and kwargs["cores"] == 4
    assert kwargs["scheduler_job"] == {"queue": "debug", "idle-timeout": "1 hour"}


async def test_a_profile_may_define_pools() -> None:
    site = {
        "system": "slurm",
        "queue": "regular",
        "cores": 4,
        "memory": "8GB",
        "pools": {
            "gpu": {
                "queue": "gpu",
                "cores": 2,
                "memory": "16GB",
                "gpus": 2,
                "job-extra-directives": ["--mem-per-gpu=8G"],
            },
            "big_mem": {
                "cores": 4,
                "memory": "64GB",
                "directives": ["--constraint=bigmem"],
            },
        },
    }
    with dask.config.set({"hpcdask.profiles": {"site": site}}):
        profile = load_profile("site")
        pools = profile.cluster_kwargs()["pools"]
        # the - spelling and directives become the cluster's arguments
        assert pools["gpu"]["job_extra_directives"] == ["--mem-per-gpu=8G"]
        assert pools["big_mem"]["job_extra_directives"] == ["--constraint=bigmem"]
        async with HPCCluster.from_profile("site", asynchronous=True) as cluster:
            gpu = cluster.job_script(pool="gpu")
            assert "#SBATCH -p gpu" in gpu and "#SBATCH --gres=gpu:2" in gpu
            assert "#SBATCH --mem-per-gpu=8G" in gpu and "--mem=" not in gpu
            big = cluster.job_script(pool="big_mem")
            assert "#SBATCH --constraint=bigmem" in big and "#SBATCH -p regular" in big
            assert "--gres" not in cluster.job_script()


async def test_the_documented_pools_profile_makes_both_pools() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "pools.md"
    block = re.search(r"```yaml\n(.*?)```", docs.read_text(), re.S)
    assert block is not None
    config = yaml.safe_load(block.group(1))
    with dask.config.set({"hpcdask.profiles": config["hpcdask"]["profiles"]}):
        async with SLURMCluster.from_profile(
            "cpu-and-gpu", asynchronous=True
        ) as cluster:
            gpu = cluster.job_script(pool="gpu")
            assert "#SBATCH --gres=gpu:4" in gpu and "--mem-per-gpu=60G" in gpu
            assert "--nworkers 1" in gpu and "--resources GPU=1" in gpu
            cpu = cluster.job_script()
            assert "--resources CPU=1" in cpu and "--gres" not in cpu
