"""How much of the generation gap is Ray itself? Bare vLLM's generation throughput with
and without an idle loopback Ray head (raylet, GCS, dashboard and its agents) on the
same machine, alternated. On a 2-core CPU box the engine and Ray's daemons share the
cores; on a GPU node they do not compete for the accelerator.

    python bench/ray_overhead.py [--alternations 3]   # writes bench/RESULTS-ray-overhead.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.generation import build_inputs, command, machine, timed, versions  # noqa: E402
from tests.integration.services import start_ray  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--alternations", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=16)
    args = p.parse_args()
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))
    sizes = build_inputs(1500)
    times: dict[str, dict[str, list[float]]] = {m: {"full": [], "small": []}
                                                for m in ("alone", "idle ray")}
    for i in range(args.alternations):
        order = ["alone", "idle ray"] if i % 2 == 0 else ["idle ray", "alone"]
        for cond in order:
            cluster = start_ray({}, num_cpus=2) if cond == "idle ray" else None
            try:
                time.sleep(5 if cluster else 0)  # let the daemons settle
                for size in ("small", "full"):
                    t = timed(command("bare", size, sizes, model, args.max_new_tokens))
                    times[cond][size].append(t)
                    print(f"alternation {i + 1} {cond:8} {size:5} {t:6.1f} s", flush=True)
            finally:
                if cluster:
                    cluster.stop()
    n = sizes["full"] - sizes["small"]
    rate = {c: statistics.median(n / max(f - s, 1e-9) for f, s in zip(t["full"], t["small"], strict=False))
            for c, t in times.items()}
    ratio = rate["idle ray"] / rate["alone"]
    out = [
        "# Bare vLLM with and without an idle Ray head on the same machine", "",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        f"Versions: {versions()}.", "",
        f"Bare vLLM `LLM.generate`, one call, {sizes['full']} vs {sizes['small']} prompts "
        f"(marginal throughput), max_new_tokens={args.max_new_tokens}, "
        f"{args.alternations} alternations, medians. 'idle ray': a loopback `ray start "
        "--head --num-cpus=2` with dashboard, no job.", "",
        "| condition | generation prompts/s |", "| --- | --- |",
        *(f"| {c} | {r:.1f} |" for c, r in rate.items()), "",
        f"- idle Ray / alone: {ratio:.2f}x", "",
        f"Raw times (s): `{times}`", "",
        "Reproduce: `python bench/ray_overhead.py --alternations "
        f"{args.alternations}`", ""]
    (REPO / "bench/RESULTS-ray-overhead.md").write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
