"""The cost estimate: engine-hours from the plan's tokens, assumed or measured."""

from __future__ import annotations

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import RunConfig
from qcraft_ray.estimate import EngineProbe, MeasuredRate, PromptSample, estimate
from qcraft_ray.ledger.counts import RowCounts


def config(**sections) -> RunConfig:
    return RunConfig.model_validate({"input": {"paths": ["x"]}, "output": {"path": "o"},
                                     **sections})


def test_assumed_rate_is_per_gpu_and_counts_prompt_and_generated_tokens():
    counts = RowCounts(outputs={"pending": 1000}, prompt_tokens=576_000)
    cfg = config(generation={"gpus_per_replica": 2},
                 estimate={"tokens_per_gpu_second": 100_000, "output_tokens_per_prompt": 24,
                           "gpu_hour_price": 3.0})
    got = estimate(counts, cfg, None)
    assert got["source"] == "config" and got["generated_tokens"] == 24_000
    engine_s = (576_000 + 24_000) / (2 * 100_000)  # a replica of 2 GPUs: twice the rate
    assert got["engine_hours"] == round(engine_s / 3600, 4)
    assert got["gpu_hours"] == round(2 * engine_s / 3600, 4)
    assert got["cost"] == round(got["gpu_hours"] * 3.0, 2)
    assert "cost" not in estimate(counts, config(), None)


def test_the_h200_run_at_the_default_rate():
    """5,439 prompts of 576 tokens, 24 new tokens: 21.0 s on one H200 (README)."""
    counts = RowCounts(outputs={"pending": 5439}, prompt_tokens=5439 * 576)
    got = estimate(counts, config(estimate={"output_tokens_per_prompt": 24}), None)
    assert got["engine_hours"] * 3600 == pytest.approx(21.0, rel=0.01)


def test_measured_rate_and_output_length_replace_the_assumed_ones():
    counts = RowCounts(outputs={"pending": 100}, prompt_tokens=50_000)
    m = MeasuredRate(prompts=10, prompt_tokens=5_000, generated_tokens=300, seconds=2.0,
                     load_s=9.0, gpus=1)
    got = estimate(counts, config(), m)
    assert got["source"] == "measured" and got["output_tokens_per_prompt"] == 30
    assert got["tokens_per_replica_second"] == 2650.0
    assert got["engine_hours"] == round((50_000 + 3_000) / 2650 / 3600, 4)
    assert got["measured"]["load_s"] == 9.0


def test_prompt_sample_is_seeded_uniform_and_pending_only():
    def batch(start: int, n: int) -> pa.Table:
        return pa.table({S.STATUS: [S.STATUS_PENDING] * n + [S.STATUS_REJECTED],
                         S.PROMPT_TOKEN_IDS: [[i] for i in range(start, start + n)] + [None]})

    a, b = PromptSample(50), PromptSample(50)
    for s in (a, b):
        for k in range(20):
            s.add(batch(100 * k, 100))
    assert a.prompts == b.prompts and len(a.prompts) == 50
    firsts = [p[0] for p in a.prompts]
    assert min(firsts) < 500 and max(firsts) > 1500  # spread over the input
    small = PromptSample(500)
    small.add(batch(0, 30))
    assert len(small.prompts) == 30  # fewer prompts than asked: all of them


def test_engine_probe_times_the_instant_engine(tmp_path):
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir

    cfg = config(model={"name": str(tokenizer_files_dir())},
                 generation={"gpus_per_replica": 0, "engine": {"backend": "instant"}})
    got = EngineProbe(cfg).measure([[1000 + i] * 50 for i in range(8)])
    assert got.prompts == 8 and got.prompt_tokens == 400 and got.generated_tokens >= 8
    assert got.seconds > 0 and got.gpus == 0


def test_a_measure_with_nothing_to_measure_says_so():
    got = estimate(RowCounts(outputs={}), config(), None, asked=True)
    assert got["source"] == "config" and "no prompt to measure" in got["note"]
