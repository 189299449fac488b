#!/usr/bin/env bash
# The busy-queue benchmark (issue #16): sets up Slurm, the busy-queue Slurm site
# (ci/busy-site-up.sh) and the environment, installs dask-jobqueue as a
# benchmark-only dependency (benchmarks/.deps), and runs the situations side by
# side. Arguments go to benchmarks/busy.py (e.g. --only busy --tools hpcdask).
# About 2 hours (three tools, windows of 18, 10 and 10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/slurm-up.sh
bash ci/busy-site-up.sh
PY=$(bash ci/venv.sh)
if [ ! -d benchmarks/.deps/dask_jobqueue ]; then
    "$PY" -m pip install --quiet --no-deps --target benchmarks/.deps "dask-jobqueue==0.9.0"
fi
exec "$PY" -m benchmarks.busy "$@"
