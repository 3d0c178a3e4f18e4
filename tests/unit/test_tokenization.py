"""Loading the model's tokenizer: the class its tokenizer_config.json names, loaded
directly, is what AutoTokenizer gives, without AutoTokenizer's imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
from qcraft_ray.stages.prompts import messages
from qcraft_ray.tokenization import named_tokenizer_class


def test_direct_class_is_what_auto_tokenizer_gives(tokenizer, passages):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(tokenizer_files_dir()))
    assert type(tokenizer) is type(auto)
    assert tokenizer.init_kwargs == auto.init_kwargs
    assert tokenizer.backend_tokenizer.to_str() == auto.backend_tokenizer.to_str()
    assert tokenizer.added_tokens_decoder == auto.added_tokens_decoder
    texts = [p["text"] for p in passages]
    for ours, theirs in zip(
        tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False),
        auto.backend_tokenizer.encode_batch(texts, add_special_tokens=False),
        strict=True,
    ):
        assert (ours.ids, ours.offsets) == (theirs.ids, theirs.offsets)
    for p in passages[:10]:
        kwargs = {"tokenize": False, "add_generation_prompt": True, "enable_thinking": False}
        msgs = messages(p["text"], p["language"], "query")
        assert tokenizer.apply_chat_template(msgs, **kwargs) == auto.apply_chat_template(
            msgs, **kwargs
        )


def test_loading_does_not_import_torch():
    code = (
        "import sys; from qcraft_ray.config import ModelConfig; "
        "from qcraft_ray.tokenization import load_tokenizer; "
        f"load_tokenizer(ModelConfig(name={str(tokenizer_files_dir())!r})); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({}, "Qwen2Tokenizer"),
        ({"tokenizer_class": "Qwen2TokenizerFast"}, "Qwen2Tokenizer"),
        ({"auto_map": {"AutoTokenizer": ["x.Tok", None]}}, None),
        ({"tokenizer_class": "PreTrainedTokenizerFast"}, None),
        ({"tokenizer_class": "TokenizersBackend"}, None),
        ({"tokenizer_class": None}, None),
    ],
)
def test_named_tokenizer_class(tmp_path, extra, expected):
    for f in tokenizer_files_dir().iterdir():
        shutil.copy(f, tmp_path / f.name)
    cfg_path = tmp_path / "tokenizer_config.json"
    cfg = {**json.loads(cfg_path.read_text()), **extra}
    cfg_path.write_text(json.dumps(cfg))
    assert named_tokenizer_class(str(tmp_path), None) == expected


def test_no_tokenizer_config_leaves_it_to_auto_tokenizer(tmp_path):
    assert named_tokenizer_class(str(tmp_path), None) is None


@pytest.mark.parametrize("text", ['{"tokenizer_class": "Qwen2Tokenizer",', "[1, 2]"])
def test_a_malformed_tokenizer_config_is_named_in_the_error(tmp_path, text):
    (tmp_path / "tokenizer_config.json").write_text(text)
    with pytest.raises(ValueError, match=r"tokenizer_config\.json: not a valid tokenizer config"):
        named_tokenizer_class(str(tmp_path), None)
