"""The config file ``hpcdask config`` writes: every option with its default
and what it means, all commented out (as written it sets nothing)."""

from __future__ import annotations

import os

import yaml

from hpcdask.config import SGE_ROOT_HELP
from hpcdask.options import DEFAULTS, OPTION_HELP, SYSTEM_OPTIONS, SYSTEMS

__all__ = ["default_config_path", "render_config"]


def render_config() -> str:
    """A commented ``hpcdask.yaml``: every option with its default, all commented.

    As written the file sets nothing, so it hides no site-wide setting and no
    ``jobqueue.<system>.*`` value (an existing ``jobqueue.yaml``), which hpcdask
    reads for whatever is left unset. Removing the leading ``# `` from an option's
    line and from the lines of its parents sets it.
    """
    lines = [
        "# hpcdask configuration, read by dask from ~/.config/dask/ (or /etc/dask/).",
        "# Nothing is set yet: to set an option, remove the leading '# ' from its",
        "# line and from its parents' lines ('hpcdask:', '  slurm:'). Options left",
        "# unset are read from jobqueue.<system>.* (a dask-jobqueue jobqueue.yaml),",
        "# then take the defaults shown. Constructor arguments override all of these.",
        "#",
        "# hpcdask:",
        "#   # how often the queue is asked about a cluster's jobs (one command)",
        "#   poll-interval: 5s",
        "#   # TLS with a certificate made per cluster; false: unencrypted, and",
        "#   # anyone who reaches the scheduler's port can run code in it",
        "#   security: true",
        "#   # the longest close() spends cancelling the cluster's jobs",
        "#   close-timeout: 30s",
        "#   # a batch command running longer is killed",
        "#   command-timeout: 60s",
    ]
    for system in SYSTEMS:
        lines.append(f"#   {system}:")
        for option, default in DEFAULTS.items():
            if system not in SYSTEM_OPTIONS.get(option, (system,)):
                continue
            key = option.replace("_", "-")
            value = yaml.safe_dump(default, default_flow_style=True)
            value = value.strip().removesuffix("...").strip()
            lines.append(f"#     {key}: {value}  # {OPTION_HELP[option]}")
        if system == "sge":
            lines.append(f"#     sge-root: null  # {SGE_ROOT_HELP}")
    lines += [
        "#   # site profiles: SLURMCluster.from_profile(NAME), `hpcdask profiles`;",
        "#   # keys: system, description, directives and any option above",
        "#   profiles:",
        "#     small:",
        "#       description: 2 cores, 4 GB, 8 hours",
        "#       system: slurm",
        "#       queue: shared",
        "#       cores: 2",
        "#       memory: 4GB",
        '#       walltime: "08:00:00"',
        "#     gpu-small:",
        "#       system: slurm",
        "#       queue: gpu",
        "#       cores: 8",
        "#       memory: 32GB",
        '#       directives: ["--gres=gpu:1"]',
    ]
    return "\n".join(lines) + "\n"


def default_config_path() -> str:
    """Where ``hpcdask config`` writes: ``$DASK_CONFIG`` or ~/.config/dask."""
    root = os.environ.get("DASK_CONFIG") or os.path.join(
        os.path.expanduser("~"), ".config", "dask"
    )
    return os.path.join(root, "hpcdask.yaml")
