#!/usr/bin/env bash
# The README's main job: the ensemble workflow (examples/ensemble.py) on an
# adaptive hpcdask cluster, on Slurm when one answers here, else on the embedded
# local backend: writes a synthetic 2 GB ensemble to Zarr, computes ensemble
# statistics, checks them against numpy, lets the cluster shrink, prints the cost.
# Extra arguments go to the script (e.g. --size 200MB, --system local).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash ci/venv.sh)
exec "$PY" examples/ensemble.py "$@"
