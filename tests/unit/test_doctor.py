"""qcraft doctor's pure parts: GPU room and memory, lines, and run's version preflight."""

from __future__ import annotations

import pytest

from qcraft_ray.compat.versions import Verdict
from qcraft_ray.config import RunConfig
from qcraft_ray.doctor.cluster import gpu_findings
from qcraft_ray.doctor.findings import fail, failed, guarded, ok, render

GB = 10**9


def cfg(**gen) -> RunConfig:
    return RunConfig.model_validate(
        {"input": {"paths": ["/tmp/in"]}, "generation": gen, "output": {"path": "/tmp/x"}}
    )


def node(name: str, gpus: float, memory: int | None = None) -> dict:
    return {"name": name, "gpus": gpus, "gpu_memory_bytes": memory}


def test_no_gpu_where_gpus_are_asked_fails():
    (f,) = gpu_findings(cfg(gpus_per_replica=1), [node("a", 0), node("b", 0)], 4 * GB)
    assert f.verdict == Verdict.FAIL and "no node has the 1 GPU(s)" in f.detail and f.fix


def test_a_replica_of_two_gpus_needs_a_node_with_two():
    (f,) = gpu_findings(cfg(gpus_per_replica=2), [node("a", 1), node("b", 1)], 0)
    assert f.verdict == Verdict.FAIL  # two 1-GPU nodes hold no 2-GPU replica


def test_fewer_replicas_than_asked_warns_and_enough_is_ok():
    few = gpu_findings(cfg(gpus_per_replica=1, replicas="4..8"), [node("a", 2)], 0)
    assert [f.verdict for f in few] == [Verdict.WARN] and "room for 2 replica(s)" in few[0].detail
    room = gpu_findings(cfg(gpus_per_replica=1, replicas=8), [node("a", 8)], 0)
    assert [f.verdict for f in room] == [Verdict.OK]


def test_gpu_memory_against_the_weights():
    small = gpu_findings(cfg(gpus_per_replica=1), [node("a", 8, 141 * GB)], int(3.4 * GB))
    assert [f.verdict for f in small] == [Verdict.OK, Verdict.OK]
    big = gpu_findings(cfg(gpus_per_replica=1), [node("a", 1, 16 * GB)], 30 * GB)
    assert big[1].verdict == Verdict.FAIL and "30.0 GB of weights" in big[1].detail
    tp = gpu_findings(cfg(gpus_per_replica=4), [node("a", 4, 16 * GB)], 30 * GB)
    assert tp[1].verdict == Verdict.OK  # split over four GPUs


def test_no_gpus_asked_needs_none():
    (f,) = gpu_findings(cfg(gpus_per_replica=0), [], 0)
    assert f.verdict == Verdict.OK


def test_lines_summary_and_a_raising_check():
    found = [ok("ray", "Ray 2.60.0"), fail("output", "cannot write", "fix it")]
    found += guarded("input", lambda: [][0])
    text = render(found)
    assert text.splitlines()[0].startswith("OK    ray")
    assert "FAIL  output       cannot write -> fix it" in text
    assert "FAIL  input        IndexError" in text
    assert text.endswith("qcraft doctor: 1 OK, 0 WARN, 2 FAIL") and failed(found)


def test_run_refuses_an_unsupported_ray_before_anything(monkeypatch, capsys, tmp_path):
    """The preflight reads versions from package metadata; here it is told Ray 2.40."""
    from qcraft_ray import cli
    from qcraft_ray.compat import versions

    real = versions.installed
    monkeypatch.setattr(
        "qcraft_ray.doctor.versions.installed",
        lambda pkg: "2.40.0" if pkg is versions.RAY else real(pkg),
    )
    code = cli.main(["run", "configs/local.yaml", "--set", f"output.path={tmp_path}/out"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert "Ray 2.40.0 is older than the oldest supported release 2.48.0" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("newer", ["2.61.0"])
def test_run_warns_on_a_newer_ray(monkeypatch, caplog, newer):
    from qcraft_ray import cli
    from qcraft_ray.compat import versions

    real = versions.installed
    monkeypatch.setattr(
        "qcraft_ray.doctor.versions.installed",
        lambda pkg: newer if pkg is versions.RAY else real(pkg),
    )
    cli._preflight(cfg())
    assert f"Ray {newer} is newer than the supported range" in caplog.text


def test_the_compile_cache_folder_is_read_as_a_replica_would(tmp_path):
    from qcraft_ray.compile_cache import cache_key
    from qcraft_ray.doctor.storage import compile_cache_findings

    shared = tmp_path / "shared"
    cfg = RunConfig.model_validate({
        "input": {"paths": ["f"]}, "output": {"path": "o"},
        "model": {"cache_dir": str(tmp_path / "models")},
        "generation": {"engine": {"compile_cache": str(shared)}}})
    assert compile_cache_findings(RunConfig.model_validate(
        {"input": {"paths": ["f"]}, "output": {"path": "o"}})) == []  # not set
    [found] = compile_cache_findings(cfg)
    assert found.verdict == Verdict.OK and "0 publish(es)" in found.line()
    key = shared / cache_key("cuda", cfg.model.name)
    key.mkdir(parents=True)
    (key / "n1.done").write_text('{"inductor/fxgraph/a/b": 3}')
    [found] = compile_cache_findings(cfg)
    assert "1 publish(es), 1 files" in found.line()
    (key / "n2.done").write_text('{"inductor/fx')  # cut short
    [found] = compile_cache_findings(cfg)
    assert found.verdict == Verdict.FAIL and "generation.engine.compile_cache" in found.line()
