"""The README's picture of the report page: render an output's page in headless
Chromium (Debian's package) and save its top as a small PNG.

    python scripts/report_screenshot.py OUTPUT_PATH docs/report.png

docs/report.png was made from the 7-type run over the sample corpus on the paced engine
(tests/integration/test_job.py::test_paced_engine_job_with_the_cluster_configs_generation).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(output: str, png: str, size: str = "1280,1250") -> None:
    from PIL import Image

    from qcraft_ray.config import StorageConfig
    from qcraft_ray.report.combine import read_finished
    from qcraft_ray.report.page import render_html
    from qcraft_ray.report.summary import summarize
    from tests.integration.browser import render

    done = read_finished(output, StorageConfig())  # its report and committed counts
    run = done.run
    summary = summarize(done.path, done.counts, run.config.generation.types)
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "page.html", Path(tmp) / "shot.png"
        page.write_text(render_html(summary, run), encoding="utf-8")
        render(f"file://{page}", screenshot=str(shot), size=size)
        image = Image.open(shot).convert("RGB").quantize(64, Image.Quantize.MEDIANCUT)
        image.save(png, optimize=True)
    print(f"{png}: {Path(png).stat().st_size:,} bytes")


if __name__ == "__main__":
    main(*sys.argv[1:])
