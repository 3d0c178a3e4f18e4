#!/usr/bin/env bash
# Set up (CPU), build the tiny random Qwen3 stand-in, run the job on the bundled sample
# corpus with configs/local.yaml. Output: out/sample/ (Parquet, _rejected/, _report.json).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/qcraft ] || bash scripts/setup.sh cpu
. .venv/bin/activate
qcraft make-tiny-model .cache/tiny-qwen3 >/dev/null
qcraft run configs/local.yaml "$@"
