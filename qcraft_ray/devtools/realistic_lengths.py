"""Give the tiny random Qwen3 realistic output lengths: a short mean with a long tail.

A random model almost never emits end-of-sequence, so every output runs to
``max_new_tokens``; the real model's outputs are short (about 5-40 tokens) with a tail.
This module wires a stop trigger into the weights:

- hidden dimension 0 is set aside: no token embeds anything there, no layer reads it
  (its norm weights are 0) and no layer writes it (its output rows are 0), so the rest
  of the model computes exactly as if it were not there;
- a set T of "trigger" tokens (a seeded fraction ``p`` of the vocabulary, never the
  prompt's last tokens) embed a small constant in dimension 0, and the untied output
  head maps dimension 0 only to end-of-sequence, strongly;
- so the step after the model writes a trigger token ends the output. Greedy outputs of
  a random model are mostly varied tokens (a trigger every ~1/p tokens: a geometric
  length) and sometimes a loop on a few tokens (the tail, up to ``max_new_tokens``).

``p`` is calibrated on prompts from the bundled sample passages: the model generates
with end-of-sequence suppressed (the trigger changes nothing before it fires), and ``p``
is the fraction of the vocabulary whose first hit gives the wanted mean length.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

STOP_DIM = 0
TRIGGER_VALUE = 0.01  # small: it only shifts the final norm's scale, at trigger steps
EOS_GAIN = 1e5  # end-of-sequence logit ~ EOS_GAIN * 0.01 / rms: far above every other


def set_aside_stop_dimension(model: Any, eos_ids: list[int]) -> None:
    """Make hidden dimension :data:`STOP_DIM` invisible to the model, and untie the head."""
    import torch

    with torch.no_grad():
        inner = model.model
        head = torch.nn.Parameter(inner.embed_tokens.weight.detach().clone())
        model.lm_head.weight = head
        inner.embed_tokens.weight[:, STOP_DIM] = 0
        for layer in inner.layers:
            layer.input_layernorm.weight[STOP_DIM] = 0
            layer.post_attention_layernorm.weight[STOP_DIM] = 0
            layer.self_attn.o_proj.weight[STOP_DIM, :] = 0
            layer.mlp.down_proj.weight[STOP_DIM, :] = 0
        head[:, STOP_DIM] = 0
        for eos in eos_ids:
            head[eos, :] = 0  # end-of-sequence only through the stop dimension
        model.config.tie_word_embeddings = False


def arm_triggers(model: Any, triggers: list[int], eos: int) -> None:
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight[triggers, STOP_DIM] = TRIGGER_VALUE
        model.model.norm.weight[STOP_DIM] = 1.0
        model.lm_head.weight[eos, STOP_DIM] = EOS_GAIN


def calibration_prompts(tokenizer: Any, count: int = 40) -> list[list[int]]:
    """Prompt token ids for ``count`` bundled sample passages, over the output types."""
    from qcraft_ray.languages import language_for_code
    from qcraft_ray.output_types import TYPES
    from qcraft_ray.stages.prompts import PromptRenderer

    renderer = PromptRenderer(tokenizer)
    passages = json.loads(Path(__file__).with_name("passages.json").read_text("utf-8"))
    usable = [p for p in passages if p["kind"] == "normal" and language_for_code(p["lang"])]
    out = []
    for i, p in enumerate(usable[:count]):
        language = language_for_code(p["lang"])
        text = renderer.render(p["text"][:2000].strip(), str(language), TYPES[i % len(TYPES)])
        out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return out


def first_hits(sequences: list[list[int]], rank: Any, p: float, cap: int) -> list[int]:
    """Output lengths when tokens of ``rank < p`` trigger the stop: the first trigger's
    position + 1 (the step after it ends the output), or ``cap``."""
    lengths = []
    for seq in sequences:
        hit = next((k + 1 for k, t in enumerate(seq) if rank[t] < p), cap)
        lengths.append(min(hit, cap))
    return lengths


def calibrate(
    model: Any,
    tokenizer: Any,
    mean_tokens: float,
    cap: int = 128,
    seed: int = 0,
    prompts: int = 40,
) -> dict:
    """Choose the trigger set for ``mean_tokens``; arm it; return what was measured."""
    import numpy as np
    import torch

    eos = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    stops = [eos, int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))]
    set_aside_stop_dimension(model, stops)
    prompt_ids = calibration_prompts(tokenizer, prompts)
    sequences = []
    with torch.no_grad():
        for ids in prompt_ids:
            out = model.generate(
                torch.tensor([ids]), max_new_tokens=cap, do_sample=False, suppress_tokens=stops
            )
            sequences.append(out[0, len(ids) :].tolist())
    rank = np.random.default_rng(seed).random(model.config.vocab_size)
    for ids in prompt_ids:  # the prompt's last token never triggers: no empty outputs
        rank[ids[-1]] = 1.0
    lo, hi = 0.0, 1.0
    for _ in range(30):  # the mean length falls as p grows
        p = (lo + hi) / 2
        if statistics.mean(first_hits(sequences, rank, p, cap)) > mean_tokens:
            lo = p
        else:
            hi = p
    p = (lo + hi) / 2
    lengths = sorted(first_hits(sequences, rank, p, cap))
    arm_triggers(model, [int(t) for t in np.flatnonzero(rank < p)], eos)
    return {
        "trigger_share": round(p, 5),
        "calibration_prompts": len(prompt_ids),
        "max_new_tokens": cap,
        "mean": round(statistics.mean(lengths), 1),
        "p10": lengths[len(lengths) // 10],
        "p50": lengths[len(lengths) // 2],
        "p90": lengths[len(lengths) * 9 // 10],
        "at_cap": sum(n == cap for n in lengths),
    }
