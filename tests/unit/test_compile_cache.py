"""The shared compile caches (generation.engine.compile_cache) on a shared folder: what a
node publishes, what another fetches, what neither takes. The real caches, written by
vLLM and torch, are shared in test_lake's S3 shards (tests/integration)."""

import json
import os
import time

import pytest

from qcraft_ray.compile_cache import (
    DONE,
    SharedCompileCache,
    cache_key,
    fetch_quietly,
    local_files,
    shared_for,
)
from qcraft_ray.config import GenerationConfig, ModelConfig, StorageConfig

KEY = "vllm-test-torch-test-cpu"


def write(folder, rel, data, age_s=60.0):
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))


def node(tmp_path, name, shared, key=KEY):
    return SharedCompileCache(str(shared), key, tmp_path / name / f"compile-{key}", StorageConfig())


def test_a_node_fetches_what_another_published_and_nothing_it_must_not(tmp_path):
    shared = tmp_path / "shared"
    a, b = node(tmp_path, "a", shared), node(tmp_path, "b", shared)
    write(a.folder, "inductor/fxgraph/xy/graph", b"compiled graph")
    write(a.folder, "vllm/torch_compile_cache/abc/rank_0_0/artifact", b"x" * 1000)
    write(a.folder, "inductor/locks/xy.lock", b"")  # the caches' locks stay on the node
    write(a.folder, "inductor/fxgraph/xy/.123.456.tmp", b"half")  # being written
    write(a.folder, "inductor/fxgraph/zz/graph", b"just written", age_s=0.0)  # may still be

    assert b.fetch().files == 0  # nothing published yet
    assert a.publish(time.time() - 2) == 2
    fetched = b.fetch()
    assert (fetched.files, fetched.bytes, fetched.publishes) == (2, 1014, 1)
    assert local_files(b.folder) == {
        "inductor/fxgraph/xy/graph": 14,
        "vllm/torch_compile_cache/abc/rank_0_0/artifact": 1000,
    }
    assert (b.folder / "inductor/fxgraph/xy/graph").read_bytes() == b"compiled graph"

    # the file that was being written is published once settled, in a publish of its own
    assert a.publish(time.time() - 2) == 0
    os.utime(a.folder / "inductor/fxgraph/zz/graph", (time.time() - 60, time.time() - 60))
    assert a.publish(time.time() - 2) == 1
    again = b.fetch()
    assert (again.files, again.publishes) == (1, 2)  # what it had is not copied again
    assert b.publish(time.time() - 2) == 0  # b holds nothing the shared folder lacks

    # a third node fetches both publishes at once
    c = node(tmp_path, "c", shared)
    assert c.fetch().files == 3 and local_files(c.folder) == local_files(b.folder)


def test_an_incomplete_publish_is_not_fetched_and_a_changed_file_is(tmp_path):
    shared = tmp_path / "shared"
    a, b = node(tmp_path, "a", shared), node(tmp_path, "b", shared)
    write(a.folder, "vllm/modelinfos/qwen3.json", b"{}")
    assert a.publish(time.time() - 2) == 1
    # a publisher killed before its list: its files are there, its .done is not
    write(shared / KEY / "killed-1", "inductor/fxgraph/q/graph", b"orphan")
    assert b.fetch().files == 1 and not (b.folder / "inductor/fxgraph/q/graph").exists()

    write(a.folder, "vllm/modelinfos/qwen3.json", b'{"more": 1}')  # a size of its own
    assert a.publish(time.time() - 2) == 1
    assert b.fetch().files == 1
    assert (b.folder / "vllm/modelinfos/qwen3.json").read_bytes() == b'{"more": 1}'
    dones = sorted(p.name for p in (shared / KEY).iterdir() if p.name.endswith(DONE))
    assert len(dones) == 2 and all(json.loads((shared / KEY / d).read_text()) for d in dones)


def test_a_failed_fetch_is_logged_and_the_engine_compiles(tmp_path, caplog):
    shared = tmp_path / "shared"
    write(shared / KEY, "cut-short.done", b'{"inductor/fxgraph/q/gr')  # a corrupt list
    b = node(tmp_path, "b", shared)
    with caplog.at_level("WARNING", logger="qcraft"):
        assert fetch_quietly(b).startswith("JSONDecodeError")  # the report's fetch_error
    assert "compile cache" in caplog.text and "compiling here" in caplog.text


def test_the_replica_points_its_caches_at_the_nodes_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("VLLM_CACHE_ROOT", "/elsewhere")  # restored after the test
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    model = ModelConfig(name="m", cache_dir=str(tmp_path / "models"))
    off = GenerationConfig()
    assert shared_for(off, model, StorageConfig()) is None
    assert os.environ["VLLM_CACHE_ROOT"] == "/elsewhere"
    gen = GenerationConfig(engine={"compile_cache": str(tmp_path / "shared")})
    shared = shared_for(gen, model, StorageConfig())
    assert shared is not None
    assert shared.folder == tmp_path / "models" / f"compile-{cache_key('cuda', 'm')}"
    assert os.environ["VLLM_CACHE_ROOT"] == str(shared.folder / "vllm")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(shared.folder / "inductor")
    # no engine to compile: the instant and paced engines share nothing
    assert shared_for(GenerationConfig(engine={"compile_cache": "x", "backend": "paced"}),
                      model, StorageConfig()) is None


def test_the_key_names_the_model_the_releases_and_the_device():
    key = cache_key("cpu", "s3://bucket/models/query-crafter")
    assert key.startswith("query-crafter-") and "-vllm-" in key and "-torch-" in key
    assert key.endswith("-cpu") and all(c.isalnum() or c in "._-" for c in key)
    assert cache_key("cuda", "s3://bucket/models/query-crafter") != key
    assert cache_key("cpu", "s3://other/models/query-crafter") != key


def test_compile_cache_and_an_own_cache_folder_in_env_are_refused():
    with pytest.raises(ValueError, match="VLLM_CACHE_ROOT"):
        GenerationConfig(engine={"compile_cache": "s3://b/cc", "env": {"VLLM_CACHE_ROOT": "/x"}})
    GenerationConfig(engine={"env": {"VLLM_CACHE_ROOT": "/x"}})  # without it: the user's


def test_a_replica_fetches_before_its_engine_and_publishes_what_it_compiled(tmp_path, monkeypatch):
    """Through the replica (a fake engine that "compiles" into the cache folder vLLM
    would use): the published graph is on the node before the engine is built, the new
    one is published after, and the replica reports both."""
    import threading

    from qcraft_ray.stages.generate import Replica
    from tests.unit.test_generate_replica import FakeEngine

    monkeypatch.setenv("VLLM_CACHE_ROOT", "")  # restored after the test: the replica sets them
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")
    shared = tmp_path / "shared"
    other = node(tmp_path, "other", shared, cache_key("cuda", str(tmp_path)))  # as the replica
    write(other.folder, "inductor/fxgraph/old/graph", b"from another node")
    assert other.publish(time.time()) == 1
    seen, ready = {}, []

    def factory(gen, model):
        inductor = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        seen["fetched"] = (tmp_path / inductor / "fxgraph/old/graph").read_bytes()
        write(tmp_path / inductor, "fxgraph/new/graph", b"compiled here", age_s=1.0)
        return FakeEngine(gen, model)

    class Progress:
        def replica_starting(self, name):
            pass

        def replica_ready(self, r):
            ready.append(r)

    gen = GenerationConfig(engine={"compile_cache": str(shared)})
    model = ModelConfig(name=str(tmp_path), cache_dir=str(tmp_path / "models"))
    Replica(gen, model, engine_factory=factory, progress=Progress(), storage=StorageConfig())
    assert seen["fetched"] == b"from another node"
    use = ready[0].compile_cache
    assert (use.fetched_files, use.publishes) == (1, 1)
    for t in threading.enumerate():
        if t.name == "qcraft-compile-publish":
            t.join(10)
    fresh = node(tmp_path, "fresh", shared, cache_key("cuda", str(tmp_path)))
    assert fresh.fetch().publishes == 2
    assert (fresh.folder / "inductor/fxgraph/new/graph").read_bytes() == b"compiled here"


def test_plan_measure_publishes_what_its_engine_compiled(tmp_path, monkeypatch):
    """`qcraft plan --measure`'s engine (a fake that "compiles" into the cache folder
    vLLM would use) publishes before the run, so the run's replicas find it."""
    import qcraft_ray.estimate as estimate
    from qcraft_ray.config import RunConfig
    from tests.unit.test_generate_replica import FakeEngine

    monkeypatch.setenv("VLLM_CACHE_ROOT", "")  # restored after the test: the probe sets them
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")

    def factory(gen, model):
        write(tmp_path / os.environ["TORCHINDUCTOR_CACHE_DIR"], "fxgraph/g/graph", b"graph",
              age_s=1.0)
        return FakeEngine(gen, model)

    monkeypatch.setattr(estimate, "make_engine", factory)
    shared = tmp_path / "shared"
    cfg = RunConfig.model_validate({
        "input": {"paths": ["f"]}, "output": {"path": "o"},
        "model": {"name": str(tmp_path), "cache_dir": str(tmp_path / "models")},
        "generation": {"engine": {"compile_cache": str(shared)}}})
    estimate.EngineProbe(cfg)
    fresh = node(tmp_path, "fresh", shared, cache_key("cuda", str(tmp_path)))
    assert fresh.fetch().files == 1
    assert (fresh.folder / "inductor/fxgraph/g/graph").read_bytes() == b"graph"


def test_a_listed_path_outside_the_nodes_folder_is_refused(tmp_path, caplog):
    """The shared folder's lists name files the node writes: one that would land outside
    its cache folder (another writer's list, a hostile one) is refused, logged."""
    shared = tmp_path / "shared"
    for rel in ("../escaped", "/tmp/absolute", "inductor/../../escaped", "ok/graph"):
        write(shared / KEY / "0000000000001-h-1", rel.lstrip("/"), b"x")
    (shared / KEY / "0000000000001-h-1.done").write_text(json.dumps(
        {"../escaped": 1, "/tmp/absolute": 1, "inductor/../../escaped": 1, "ok/graph": 1}))
    b = node(tmp_path, "b", shared)
    with caplog.at_level("WARNING", logger="qcraft"):
        assert b.fetch().files == 1
    assert local_files(b.folder) == {"ok/graph": 1}
    assert not (b.folder.parent / "escaped").exists() and caplog.text.count("refused") == 3
