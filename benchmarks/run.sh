#!/usr/bin/env bash
# The benchmark command: sets up Slurm and the environment, installs
# dask-jobqueue as a benchmark-only dependency (benchmarks/.deps), and runs the
# adaptive-scaling benchmarks side by side. Arguments go to benchmarks/run.py
# (e.g. --only time_to_workers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/slurm-up.sh
PY=$(bash ci/venv.sh)
if [ ! -d benchmarks/.deps/dask_jobqueue ]; then
    "$PY" -m pip install --quiet --no-deps --target benchmarks/.deps "dask-jobqueue==0.9.0"
fi
exec "$PY" -m benchmarks.run "$@"
