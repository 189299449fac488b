#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs and starts what the
# tests need (the one-node Slurm with munge and Slurm's Torque-compatible
# commands, the 4-node Slurm site in network namespaces, the 2-node busy-queue
# Slurm site, a one-node Son of Grid Engine, OpenMPI, Chromium, the Python
# environment), then runs lint, type
# checks, the documentation build and the whole test suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

echo "== services: Slurm (one node, 4-node site, busy-queue site), Grid Engine, munge, OpenMPI, Chromium"
bash ci/slurm-up.sh
bash ci/multinode-up.sh
bash ci/busy-site-up.sh
bash ci/sge-up.sh
bash ci/browser-up.sh

echo "== python environment"
PY=$(bash ci/venv.sh)
BIN=$(dirname "$PY")

echo "== ruff"
"$BIN/ruff" check hpcdask tests examples
"$BIN/ruff" format --check hpcdask tests examples

echo "== mypy --strict hpcdask"
"$BIN/mypy" --strict hpcdask

echo "== docs: sphinx-build, warnings as errors, into build/docs"
"$BIN/sphinx-build" -W --keep-going -q -b html docs build/docs

echo "== pytest"
"$PY" -m pytest tests -p no:cacheprovider -rfEs "$@"

echo "== test command finished in $((SECONDS - started)) s"
