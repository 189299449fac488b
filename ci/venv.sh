#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install
# hpcdask with its test and docs tools and the examples' packages. Prints the path of the environment's python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    # Debian's python3 makes no venv without python3-venv (ensurepip)
    if ! python3 -c "import ensurepip" 2>/dev/null && [ "$(id -u)" -eq 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            python3-venv >&2
    fi
    python3 -m venv .venv >&2
fi
# a hash of pyproject.toml marks an up-to-date install, so reruns are quick
stamp=".venv/.hpcdask-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e ".[test,docs,examples,jupyter]" >&2
    rm -f .venv/.hpcdask-installed-*
    touch "$stamp"
fi
echo "$PWD/.venv/bin/python"
