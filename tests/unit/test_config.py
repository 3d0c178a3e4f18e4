import pytest

from qcraft_ray.config import RunConfig
from qcraft_ray.config_loader import load_config
from qcraft_ray.errors import ConfigError
from tests.conftest import REPO

LOCAL = REPO / "configs/local.yaml"


def test_shipped_configs_load():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.generation.temperature == 0.0, path  # greedy by default everywhere
        assert cfg.model.trust_remote_code is False, path


def test_defaults_are_the_model_cards():
    cfg = RunConfig.model_validate({"input": {"paths": ["x"]}, "output": {"path": "o"}})
    assert cfg.model.name == "hotchpotch/query-crafter-multilingual"
    assert cfg.generation.types == ["query"]
    assert cfg.generation.temperature == 0.0 and cfg.generation.max_new_tokens == 128
    assert (cfg.passages.min_tokens, cfg.passages.max_tokens) == (70, 700)
    assert cfg.passages.max_chars == 10_000
    assert cfg.passages.max_tokens_for("greek") > 700


def test_overrides_parse_as_yaml():
    cfg = load_config(LOCAL, ["generation.types=[query, Title]", "generation.replicas=2",
                              "passages.max_chars=null", "generation.engine.kwargs.swap_space=0"])
    assert cfg.generation.types == ["query", "title"]
    assert cfg.generation.replica_range == (2, 2)
    assert cfg.passages.max_chars is None
    assert cfg.generation.engine.kwargs == {"swap_space": 0}


def test_replica_range():
    assert load_config(LOCAL, ["generation.replicas=1..4"]).generation.replica_range == (1, 4)
    with pytest.raises(ConfigError, match="replicas"):
        load_config(LOCAL, ["generation.replicas=4..1"])


def test_replica_env_carries_the_niceness_and_the_engine_env():
    gen = load_config(LOCAL).generation
    assert gen.replica_env == {"RAY_worker_niceness": "0", **gen.engine.env}
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" in gen.replica_env  # local.yaml's engine.env
    gen = load_config(LOCAL, ["generation.replica_niceness=15"]).generation
    assert gen.replica_env["RAY_worker_niceness"] == "15"
    # set in engine.env by hand, it wins
    gen = load_config(LOCAL, ["generation.engine.env.RAY_worker_niceness='5'"]).generation
    assert gen.replica_env["RAY_worker_niceness"] == "5"
    with pytest.raises(ConfigError, match="replica_niceness"):
        load_config(LOCAL, ["generation.replica_niceness=-1"])  # raising priority needs root


@pytest.mark.parametrize("override,needle", [
    ("generation.replica=2", "unknown config key 'generation.replica'"),
    ("outptu.path=x", "unknown config key 'outptu.path'"),
    ("generation.engine.dtyp=float32", "generation.engine has no 'dtyp'"),
    ("nodots", "expects dotted.key=value"),
])
def test_unknown_keys_are_errors_naming_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
        load_config(LOCAL, [override])


def test_extra_keys_in_yaml_are_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("input: {paths: [x]}\noutput: {path: o, colour: red}\n")
    with pytest.raises(ConfigError, match="colour"):
        load_config(p)


def test_invalid_values():
    with pytest.raises(ConfigError, match="unsupported type"):
        load_config(LOCAL, ["generation.types=[question]"])
    with pytest.raises(ConfigError, match="unsupported language"):
        load_config(LOCAL, ["input.language=klingon"])
    with pytest.raises(ConfigError, match="max_model_len"):
        load_config(LOCAL, ["generation.engine.max_model_len=1024"])
    assert load_config(LOCAL, ["input.language=Japanese"]).input.language == "japanese"
