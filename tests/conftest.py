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
