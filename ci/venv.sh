#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install
# hpcdask with its test and docs tools. Prints the path of the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv >&2
fi
# a hash of pyproject.toml marks an up-to-date install, so reruns are quick
stamp=".venv/.hpcdask-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e ".[test,docs]" >&2
    rm -f .venv/.hpcdask-installed-*
    touch "$stamp"
fi
echo "$PWD/.venv/bin/python"
