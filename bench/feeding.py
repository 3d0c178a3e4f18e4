"""Keeping the engine full: the qcraft job against bare vLLM, same prompts, alternated.

    python bench/feeding.py [--long-copies 85] [--alternations 2] [--short-alternations 3]

Model: the tiny random Qwen3 with realistic output lengths (``qcraft make-tiny-model
--realistic-lengths``: mean ~20 tokens, a tail to max_new_tokens=128). Corpora
(bench/corpus.py, no passage repeats): "short" is the bundled sample as it is; "long"
is it copied ``--long-copies`` times with each copy's words in another order (>= 5
minutes of bare generation here). Types: query and title.

Per workload, alternated, each a fresh process:
  bare    ``LLM(model)`` with vLLM's defaults (plus what a CPU run needs: float32,
          max_model_len, VLLM_CPU_KVCACHE_SPACE, in-process engine core), then one
          ``LLM.generate`` over every prompt (the chat-rendered strings the job makes)
  qcraft  ``qcraft run configs/local.yaml`` on the corpus
Once per workload, not timed against anything: ``bare-occupancy``, the same single
call's engine loop (``LLMEngine.add_request`` for every prompt, then ``step`` until
done, as ``LLM.generate`` does) with the scheduler-stats logger the job uses.

Measured: whole-process wall time; engine-alone generation rate (bare: prompts / the
generate call's time; qcraft: prompts / its engine's span, first request to last step,
from the run report); occupancy; time to first output against the bare script's load
time (both from the process launch). Results: bench/RESULTS-feeding.md (newest first).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
WORK = REPO / ".cache" / "bench-feeding"
MODEL = REPO / ".cache" / "tiny-qwen3-real"
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
BARE = dict(dtype="float32", max_model_len=2304, gpu_memory_utilization=0.3)
TYPES = ("query", "title")
MAX_NEW = 128


def prompts_for(corpus: Path) -> list[str]:
    """The chat-rendered prompts the job makes of ``corpus``, in its order."""
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.config import InputConfig, ModelConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.passages import make_passages
    from qcraft_ray.stages.prompts import PromptRenderer
    from qcraft_ray.tokenization import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(MODEL)))
    cfg = InputConfig(paths=[str(corpus)])
    plan = discover(cfg, StorageConfig())
    docs = pa.concat_tables(
        t for f in fragments_to_read(plan, 10**7) for t in read_fragment(f, cfg, StorageConfig())
    )
    rows = make_passages(docs, PassageConfig(), tok).to_pylist()
    passages = [r for r in rows if r[S.STATUS] == S.STATUS_PENDING]
    assert len({p[S.PASSAGE] for p in passages}) == len(passages), "a passage repeats"
    renderer = PromptRenderer(tok)
    return [renderer.render(p[S.PASSAGE], p[S.LANGUAGE], t) for p in passages for t in TYPES]


def child_bare(prompt_file: Path, launch: float, occupancy: bool) -> None:
    os.environ.update(CPU_ENV)
    prompts = json.loads(prompt_file.read_text())
    from vllm import LLM, SamplingParams

    params = SamplingParams(temperature=0, max_tokens=MAX_NEW)
    if occupancy:
        return child_bare_occupancy(prompts, params)
    llm = LLM(model=str(MODEL), **BARE)
    ready = time.time()
    outs = llm.generate(prompts, params, use_tqdm=False)
    done = time.time()
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    print(json.dumps({"load_s": ready - launch, "gen_s": done - ready, "prompts": len(outs),
                      "mean_output_tokens": tokens / len(outs)}))


def child_bare_occupancy(prompts: list[str], params: object) -> None:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.llm_engine import LLMEngine

    from qcraft_ray.stages.occupancy import Occupancy, scheduler_stats_logger

    args = EngineArgs(model=str(MODEL), disable_log_stats=False, **BARE)
    max_seqs = args.create_engine_config(UsageContext.LLM_CLASS).scheduler_config.max_num_seqs
    occ = Occupancy(max_seqs)
    engine = LLMEngine.from_engine_args(args, usage_context=UsageContext.LLM_CLASS,
                                        stat_loggers=[scheduler_stats_logger(occ)])
    params.output_kind = RequestOutputKind.FINAL_ONLY
    for i, p in enumerate(prompts):
        engine.add_request(str(i), p, params)
    occ.requested()
    while engine.has_unfinished_requests():
        engine.step()
    snap = occ.snapshot()
    print(json.dumps({"occupancy": snap.occupancy, "max_num_seqs": max_seqs,
                      "queue_empty_fraction": snap.queue_empty_s / snap.span_s,
                      "idle_fraction": snap.idle_s / snap.span_s, "span_s": snap.span_s}))


QCRAFT_SETS: list[str] = []  # --set: more settings for the qcraft runs


def qcraft_cmd(corpus: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "qcraft_ray.cli", "run", str(REPO / "configs/local.yaml"),
            "--set", f"model.name={MODEL}", "--set", f"input.paths=[{corpus}]",
            "--set", f"output.path={out}", "--set", "output.if_exists=overwrite",
            "--set", f"generation.types={json.dumps(list(TYPES))}",
            "--set", f"generation.max_new_tokens={MAX_NEW}",
            *sum((["--set", s] for s in QCRAFT_SETS), [])]


def run(cmd: list[str]) -> tuple[float, str]:
    t0 = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{res.stderr[-4000:]}")
    return time.monotonic() - t0, res.stdout


def one(mode: str, workload: str) -> dict:
    corpus, prompt_file = WORK / workload, WORK / f"{workload}.json"
    launch = time.time()
    if mode == "qcraft":
        out = WORK / f"out-{workload}"
        wall, _ = run(qcraft_cmd(corpus, out))
        rep = json.loads((out / "_report.json").read_text())
        (replica,) = [r for r in rep["engine"]["replicas"].values() if r["span_s"]]
        prompts = rep["throughput"]["prompts"]
        return {"wall_s": wall, "gen_rate": prompts / replica["span_s"],
                "occupancy": replica["occupancy"],
                "queue_empty_fraction": replica["queue_empty_fraction"],
                "first_output_s": rep["engine"]["first_output_at"] - launch,
                "load_s": replica["load_s"], "prompts": prompts}
    cmd = [sys.executable, __file__, "--child", mode, "--prompts-file", str(prompt_file),
           "--launch", repr(launch)]
    wall, stdout = run(cmd)
    got = json.loads(stdout.strip().splitlines()[-1])
    if mode == "bare":
        got.update(wall_s=wall, gen_rate=got["prompts"] / got["gen_s"])
    return got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--long-copies", type=int, default=85)
    p.add_argument("--alternations", type=int, default=2)
    p.add_argument("--short-alternations", type=int, default=3)
    p.add_argument("--workloads", default="short,long")
    p.add_argument("--child")
    p.add_argument("--prompts-file")
    p.add_argument("--launch", type=float)
    p.add_argument("--set", action="append", default=[], dest="sets",
                   help="dotted.key=value: a setting for the qcraft runs (repeatable)")
    args = p.parse_args()
    QCRAFT_SETS.extend(args.sets)
    if args.child:
        return child_bare(Path(args.prompts_file), args.launch, args.child == "bare-occupancy")
    from corpus import write_corpus

    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3

    build_tiny_qwen3(MODEL, realistic_lengths=True)
    results: dict = {}
    for workload in args.workloads.split(","):
        copies = 1 if workload == "short" else args.long_copies
        write_corpus(WORK / workload, copies)
        prompts = prompts_for(WORK / workload)
        (WORK / f"{workload}.json").write_text(json.dumps(prompts))
        runs: dict = {"bare": [], "qcraft": []}
        n = args.short_alternations if workload == "short" else args.alternations
        for alt in range(n):
            for mode in (("bare", "qcraft") if alt % 2 == 0 else ("qcraft", "bare")):
                runs[mode].append(one(mode, workload))
                print(workload, alt + 1, mode, json.dumps(runs[mode][-1]), flush=True)
        runs["bare-occupancy"] = [one("bare-occupancy", workload)]
        print(workload, "bare-occupancy", json.dumps(runs["bare-occupancy"][0]), flush=True)
        results[workload] = {"copies": copies, "prompts": len(prompts), "runs": runs}
    write_results(args, results)


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def spread(runs: list[dict], key: str) -> str:
    vals = [r[key] for r in runs]
    return f"{min(vals):.3g}-{max(vals):.3g}" if len(vals) > 1 else f"{vals[0]:.3g}"


def write_results(args: argparse.Namespace, results: dict) -> None:
    from generation import machine, versions
    from results import add_newest_run

    lines = [f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"Machine: {machine()}. Versions: {versions()}.", ""]
    for workload, r in results.items():
        b, q, o = r["runs"]["bare"], r["runs"]["qcraft"], r["runs"]["bare-occupancy"][0]
        lines += [
            f"### {workload}: {r['prompts']} prompts ({r['copies']} cop"
            f"{'y' if r['copies'] == 1 else 'ies'} of the sample; {len(b)} alternations; "
            f"medians, ranges in brackets)", "",
            "| | bare vLLM, one call | qcraft | ratio |", "| --- | --- | --- | --- |",
            f"| whole process, s | {med(b, 'wall_s'):.1f} [{spread(b, 'wall_s')}] | "
            f"{med(q, 'wall_s'):.1f} [{spread(q, 'wall_s')}] | "
            f"{med(q, 'wall_s') / med(b, 'wall_s'):.2f}x the time |",
            f"| engine alone, prompts/s | {med(b, 'gen_rate'):.1f} [{spread(b, 'gen_rate')}] | "
            f"{med(q, 'gen_rate'):.1f} [{spread(q, 'gen_rate')}] | "
            f"{med(q, 'gen_rate') / med(b, 'gen_rate'):.2f}x the rate |",
            f"| occupancy (running / max_num_seqs) | {o['occupancy']:.3f} (one run) | "
            f"{med(q, 'occupancy'):.3f} [{spread(q, 'occupancy')}] | "
            f"{med(q, 'occupancy') / o['occupancy']:.2f}x |",
            f"| share of time with no request waiting | {o['queue_empty_fraction']:.3f} | "
            f"{med(q, 'queue_empty_fraction'):.3f} | |",
            f"| load (bare) / first output (qcraft), s from launch | {med(b, 'load_s'):.1f} | "
            f"{med(q, 'first_output_s'):.1f} (replica load {med(q, 'load_s'):.1f}) | "
            f"+{med(q, 'first_output_s') - med(b, 'load_s'):.1f} s |",
            "", f"Mean output tokens (bare): {med(b, 'mean_output_tokens'):.1f}.", "",
            "Raw: `" + json.dumps(r["runs"]) + "`", ""]
    lines += [f"Reproduce: `python bench/feeding.py --long-copies {args.long_copies} "
              f"--alternations {args.alternations} --short-alternations "
              f"{args.short_alternations} --workloads {args.workloads}"
              + "".join(f" --set {x}" for x in args.sets) + "`", ""]
    add_newest_run(REPO / "bench" / "RESULTS-feeding.md", "Keeping the engine full (bench/feeding.py)", lines)


if __name__ == "__main__":
    main()
