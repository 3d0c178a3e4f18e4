#!/usr/bin/env bash
# Set up (CPU) if needed, then lint, format-check and type-check the library:
# ruff (rules and formatting) and mypy over qcraft_ray, as configured in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/qcraft ] || bash scripts/setup.sh cpu
. .venv/bin/activate
ruff check qcraft_ray tests jobs bench
ruff format --check qcraft_ray
mypy
