"""Continuous feeding and engine occupancy, on a scripted step engine (no vLLM): batches
submitted while others run join the engine at the next step, each caller gets its own
results in order, refused prompts and a dead engine fail the right calls."""

import threading
import time
from dataclasses import dataclass

import pytest

from qcraft_ray.stages.feeding import Feeder
from qcraft_ray.stages.isolation import IsolationGate
from qcraft_ray.stages.occupancy import Occupancy

BAD, DIE = -1, -2


@dataclass
class Out:
    request_id: str
    finished: bool
    text: str


class StepEngine:
    """``LLMEngine``'s add_request/step/abort_request: a request of prompt ``[n, ...]``
    needs ``n`` steps; ``max_seqs`` run at once, the rest wait. Records, per step, which
    requests ran."""

    def __init__(self, max_seqs=4, step_s=0.002, occupancy=None):
        self.max_seqs, self.step_s, self.occupancy = max_seqs, step_s, occupancy
        self.queue, self.left, self.prompt = [], {}, {}
        self.ran, self.aborted = [], []

    def add_request(self, rid, prompt, params):
        ids = prompt["prompt_token_ids"]
        if BAD in ids:
            raise ValueError(f"prompt {ids} refused")
        self.queue.append(rid)
        self.left[rid], self.prompt[rid] = ids[0], ids

    def abort_request(self, rids):
        self.aborted += rids
        self.queue = [r for r in self.queue if r not in rids]

    def step(self):
        time.sleep(self.step_s)
        running = self.queue[: self.max_seqs]
        if any(DIE in self.prompt[r] for r in running):
            raise RuntimeError("engine died")
        self.ran.append(list(running))
        out = []
        for rid in running:
            self.left[rid] -= 1
            if self.left[rid] == 0:
                self.queue.remove(rid)
                out.append(Out(rid, True, f"len{self.prompt[rid][0]}"))
        if self.occupancy:
            self.occupancy.step(len(running) - len(out), max(0, len(self.queue) - self.max_seqs))
        return out


def feeder(engine, occupancy=None):
    return Feeder(engine, params=None, convert=lambda o: o.text, occupancy=occupancy)


def test_results_in_order_and_batches_overlap():
    engine = StepEngine(max_seqs=4)
    f = feeder(engine)
    results = {}

    def call(name, prompts):
        results[name] = f.generate(prompts)

    # batch a has one long prompt (its tail); b arrives while a runs
    a = threading.Thread(target=call, args=("a", [[1], [40], [2], [1]]))
    a.start()
    time.sleep(0.02)
    b = threading.Thread(target=call, args=("b", [[3], [1], [2]]))
    b.start()
    a.join(5), b.join(5)
    assert results == {"a": ["len1", "len40", "len2", "len1"], "b": ["len3", "len1", "len2"]}
    # b's requests ran beside a's long one: no step ran a's tail alone while b waited
    a_long = "1"  # request ids count from 0: a's second prompt
    b_ids = {"4", "5", "6"}
    with_b = [s for s in engine.ran if a_long in s and b_ids & set(s)]
    assert with_b, engine.ran


def test_refused_prompt_fails_its_batch_only_and_aborts_its_requests():
    engine = StepEngine()
    f = feeder(engine)
    with pytest.raises(ValueError, match="refused"):
        f.generate([[2], [BAD], [1]])
    assert engine.aborted == ["0"]  # the prompt added before the refused one
    assert f.generate([[1], [1]]) == ["len1", "len1"]  # the engine goes on


def test_dead_engine_fails_calls_in_flight_and_later():
    f = feeder(StepEngine())
    with pytest.raises(RuntimeError, match="engine died"):
        f.generate([[3], [5, DIE]])
    with pytest.raises(RuntimeError, match="engine died"):
        f.generate([[1]])


def test_occupancy_counts_running_waiting_and_idle_time():
    now = [0.0]
    occ = Occupancy(max_num_seqs=4, clock=lambda: now[0], wall=lambda: 1000.0 + now[0])
    occ.requested()
    now[0] = 1.0
    occ.step(running=4, waiting=3)  # 1 s full, queue not empty
    now[0] = 2.0
    occ.step(running=2, waiting=0)  # 1 s half full, queue empty
    occ.output()
    now[0] = 5.0
    occ.idle(since=2.0)  # 3 s with nothing in the engine
    now[0] = 6.0
    occ.step(running=4, waiting=0)
    snap = occ.snapshot()
    assert (snap.span_s, snap.running_seq_s, snap.queue_empty_s, snap.idle_s) == (6, 10, 5, 3)
    assert snap.occupancy == pytest.approx(10 / 24) and snap.steps == 3
    assert snap.first_output_at == 1002.0


def test_feeder_reports_idle_time_between_batches():
    now = [0.0]
    occ = Occupancy(4, clock=lambda: now[0])
    engine = StepEngine(occupancy=occ, step_s=0)
    f = feeder(engine, occ)
    f.generate([[1]])
    now[0] = 10.0  # the pipeline took 10 s to hand over the next batch
    f.generate([[1]])
    assert occ.snapshot().idle_s == pytest.approx(10.0)


def test_isolation_gate_runs_a_suspect_batch_alone():
    gate, log, lock = IsolationGate(), [], threading.Lock()
    inside = {"shared": 0, "alone": 0}

    def run(kind, hold):
        with getattr(gate, kind)():
            with lock:
                inside["shared" if kind == "shared" else "alone"] += 1
                log.append(dict(inside))
            time.sleep(hold)
            with lock:
                inside["shared" if kind == "shared" else "alone"] -= 1

    threads = [threading.Thread(target=run, args=("shared", 0.1)) for _ in range(2)]
    threads.append(threading.Thread(target=run, args=("exclusive", 0.05)))
    threads.append(threading.Thread(target=run, args=("shared", 0.01)))
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join(5)
    assert {"shared": 2, "alone": 0} in log  # ordinary batches share
    assert all(not (s["alone"] and s["shared"]) for s in log)  # never together
    # the batch that came after the suspect one waited for it
    assert log.index({"shared": 0, "alone": 1}) < len(log) - 1
