"""Does a vLLM release have what qcraft's engine uses? Reads a wheel (or a source tree)
as text: nothing is installed or imported, so GPU-only releases can be checked here.

    pip download vllm==0.34.0 --no-deps -d /tmp/w
    python scripts/check_vllm_release.py /tmp/w/vllm-0.34.0-*.whl

Prints one line per release (OK, or what is missing); exit code 1 if anything is.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

from qcraft_ray.compat.vllm_api import missing_in_source


def check(path: Path) -> list[str]:
    if path.is_dir():
        return missing_in_source(path)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as wheel:
        wheel.extractall(tmp, [n for n in wheel.namelist() if n.startswith("vllm/")])
        return missing_in_source(Path(tmp))


def main(paths: list[str]) -> int:
    bad = 0
    for p in paths:
        gone = check(Path(p))
        bad += bool(gone)
        print(f"{Path(p).name}: " + (f"MISSING {', '.join(gone)}" if gone else "OK"))
    return 1 if bad or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
