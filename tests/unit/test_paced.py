"""The paced engine: vLLM's scheduling rule and a GPU's step times, without a model."""

from __future__ import annotations

import threading

import pytest

from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
from qcraft_ray.stages.instant import InstantEngine
from qcraft_ray.stages.paced import PacedEngine, PacedScheduler, StepPlan, _Request


def request(rid: str, prompt_tokens: int, *lengths: int) -> _Request:
    return _Request(rid, list(range(1, prompt_tokens + 1)), tuple(lengths))


def test_scheduler_runs_at_most_max_num_seqs_within_the_token_budget():
    s = PacedScheduler(max_num_seqs=2, max_num_batched_tokens=100)
    for i in range(3):
        s.add(request(f"r{i}", 60, 3))
    plan, done = s.step()  # r0 prefilled whole (60), r1 gets the 40 left
    assert plan == StepPlan(prefill_tokens=100, decode_seqs=0) and not done
    assert [r.prefilled for r in s.running] == [60, 40] and len(s.waiting) == 1
    plan, done = s.step()  # r0 decodes, r1 finishes its prefill; r2 waits for a slot
    assert plan == StepPlan(prefill_tokens=20, decode_seqs=1) and not done
    assert (s.running_seqs, s.waiting_seqs) == (2, 1)
    plan, done = s.step()  # r0 has its 3 tokens (1 at prefill, 2 decoded)
    assert [r.request_id for r in done] == ["r0"] and plan.decode_seqs == 2
    plan, done = s.step()  # r2 takes the slot; r1 ends
    assert plan == StepPlan(prefill_tokens=60, decode_seqs=1)
    assert [r.request_id for r in done] == ["r1"]


def test_samples_take_a_slot_each():
    s = PacedScheduler(max_num_seqs=4, max_num_batched_tokens=1000)
    s.add(request("a", 10, 2, 5, 1))  # 3 samples: 3 sequences
    s.add(request("b", 10, 1, 1))  # 2 more would be 5 > 4: waits
    s.step()
    assert (s.running_seqs, s.waiting_seqs) == (3, 2)
    plans = []
    while s.running or s.waiting:
        plans.append(s.step()[0])
    assert plans[0].decode_seqs == 3  # every sample decodes until the longest ends
    assert sum(p.prefill_tokens for p in plans) == 10  # b, once a's slots are free


def simulated_seconds(prompts: int, prompt_tokens: int, output_tokens: int, **engine) -> float:
    """Engine time of ``prompts`` at once, by the paced rule (virtual time)."""
    gen = GenerationConfig(gpus_per_replica=1, engine=engine)
    s = PacedScheduler(gen.engine.max_num_seqs, gen.engine.max_num_batched_tokens or 16384)
    for i in range(prompts):
        s.add(request(str(i), prompt_tokens, output_tokens))
    rate, decode = gen.engine.paced.prefill_tokens_per_s, gen.engine.paced.decode_step_ms
    total = 0.0
    while s.running or s.waiting:
        plan, _ = s.step()
        total += plan.prefill_tokens / rate + (decode / 1000 if plan.decode_seqs else 0)
    return total


def test_defaults_match_the_h200_run():
    """The H200 run (../shared/gpu/README.md): 5,439 prompts of 576 tokens, 24 new
    tokens, bare vLLM's defaults there (max_num_seqs 1024, 16,384 tokens a step) in 21.0 s."""
    seconds = simulated_seconds(5439, 576, 24, max_num_seqs=1024, max_num_batched_tokens=16384)
    assert seconds == pytest.approx(21.0, rel=0.03)


def paced_config(budget: int = 64, **paced) -> GenerationConfig:
    return GenerationConfig(
        gpus_per_replica=0, max_new_tokens=16,
        engine={"backend": "paced", "max_num_seqs": 8, "max_num_batched_tokens": budget,
                "max_model_len": 256, "paced": paced})


MODEL = ModelConfig(name=str(tokenizer_files_dir()))


def test_paced_outputs_are_the_instant_engines():
    gen = paced_config(prefill_tokens_per_s=1e6, decode_step_ms=0.1)
    engine = PacedEngine(gen, MODEL)
    prompts = [list(range(100 + i, 140 + i)) for i in range(20)]
    assert engine.generate(prompts) == InstantEngine(gen, MODEL).generate(prompts)
    snap = engine.occupancy.snapshot()
    assert snap.steps > 0 and snap.span_s > 0 and snap.first_output_at is not None


def test_paced_engine_is_paced():
    """Prefill of 20 x 40 tokens at 4,000 tokens/s: at least 0.2 s, whatever the decodes."""
    slept: list[float] = []
    gen = paced_config(prefill_tokens_per_s=4000, decode_step_ms=1)
    engine = PacedEngine(gen, MODEL, sleep=slept.append)  # virtual time: sleeps recorded
    engine.generate([list(range(100 + i, 140 + i)) for i in range(20)])
    assert sum(slept) >= 20 * 40 / 4000


def test_a_prompt_too_long_is_refused_like_vllms():
    engine = PacedEngine(paced_config(prefill_tokens_per_s=1e6), MODEL)
    with pytest.raises(ValueError, match="fit the context"):
        engine.generate([list(range(1, 300))])  # 299 > 256 - 16
    assert engine.generate([[5, 6, 7]])[0].tokens >= 1  # the engine goes on


def test_queue_empty_when_fed_late_full_when_fed_ahead():
    """The scheduler's counts reach the occupancy as vLLM's do: one batch smaller than
    max_num_seqs (all prefilled in one step) leaves the queue empty all along; several at
    once keep it full."""
    lone = PacedEngine(paced_config(budget=512, prefill_tokens_per_s=20_000, decode_step_ms=2),
                       MODEL)
    lone.generate([list(range(100 + i, 140 + i)) for i in range(4)])
    snap = lone.occupancy.snapshot()
    assert snap.queue_empty_s == pytest.approx(snap.span_s, rel=0.01)
    fed = PacedEngine(paced_config(prefill_tokens_per_s=20_000, decode_step_ms=2), MODEL)
    batches = [[list(range(100 + 40 * b + i, 140 + 40 * b + i)) for i in range(16)]
               for b in range(4)]
    threads = [threading.Thread(target=fed.generate, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = fed.occupancy.snapshot()
    assert snap.queue_empty_s < 0.5 * snap.span_s
    assert snap.occupancy is not None and snap.occupancy > 0.6
