"""CPU stages lower their own OS priority; engine processes never do. Each case runs in
a subprocess: a raised nice value cannot be taken back."""

from __future__ import annotations

import json
import subprocess
import sys

from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
from qcraft_ray.priority import ENGINE_PROCESS, engine_runtime_env


def run(code: str, env: dict[str, str] | None = None) -> dict:
    import os

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


THREAD_NICE = """
import json, os, threading
from qcraft_ray.priority import nice_value, yield_to_engines

def thread_nice(tid):
    stat = open(f"/proc/self/task/{{tid}}/stat").read()
    return int(stat[stat.rindex(")") + 2:].split()[16])

started, stop = threading.Event(), threading.Event()
tids = []
def work():
    tids.append(threading.get_native_id()); started.set(); stop.wait()
t = threading.Thread(target=work); t.start(); started.wait()
before = nice_value()
first = yield_to_engines({nice})
again = yield_to_engines(2)  # never lowered
print(json.dumps({{"before": before, "first": first, "again": again,
                   "older_thread": thread_nice(tids[0])}}))
stop.set()
"""


def test_a_stage_process_lowers_every_thread_and_never_raises_back():
    got = run(THREAD_NICE.format(nice=5))
    assert got == {"before": 0, "first": 5, "again": 5, "older_thread": 5}


def test_an_engine_process_never_lowers_itself():
    got = run(THREAD_NICE.format(nice=5), env={ENGINE_PROCESS: "1"})
    assert got == {"before": 0, "first": 0, "again": 0, "older_thread": 0}


def test_engine_actors_get_a_runtime_env_of_their_own():
    assert engine_runtime_env({}) == {"env_vars": {ENGINE_PROCESS: "1"}}
    assert engine_runtime_env({"A": "b"})["env_vars"] == {"A": "b", ENGINE_PROCESS: "1"}


def test_stages_lower_their_process_when_built():
    tok = str(tokenizer_files_dir())
    code = f"""
import json
from qcraft_ray.config import ModelConfig, PassageConfig, QualityConfig
from qcraft_ray.priority import nice_value
from qcraft_ray.stages.base import TaskStage
from qcraft_ray.stages.passages import PassageStage
from qcraft_ray.stages.quality import QualityStage
args = dict(passages=PassageConfig(), model=ModelConfig(name={tok!r}))
seen = [nice_value()]
TaskStage(PassageStage, **args).instance()
seen.append(nice_value())  # nice=0: left as it is
TaskStage(PassageStage, nice=4, **args).instance()
seen.append(nice_value())
QualityStage(QualityConfig(language_id=False), ModelConfig(name={tok!r}), nice=6)
seen.append(nice_value())
print(json.dumps(seen))
"""
    assert run(code) == [0, 0, 4, 6]
