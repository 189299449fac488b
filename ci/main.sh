#!/usr/bin/env bash
# The README's main job: a real computation on an adaptive hpcdask cluster, on
# Slurm when one answers here, else on the embedded local backend.
# Extra arguments go to `python -m hpcdask.demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(bash ci/venv.sh)
exec "$PY" -m hpcdask.demo "$@"
