"""The instant engine: no model, every prompt answered at once (``engine.backend: instant``)."""

from __future__ import annotations

import math
import zlib

from qcraft_ray.config import GenerationConfig, ModelConfig
from qcraft_ray.stages.engine import Generated


class InstantEngine:
    """No model: answers every prompt at once with a span of the prompt itself, of a
    seeded length (geometric, mean 20 tokens, at most ``max_new_tokens``). For measuring
    what the pipeline alone can do (``bench/ceiling.py``) and for tests."""

    occupancy = None

    def __init__(self, gen: GenerationConfig, model: ModelConfig) -> None:
        from qcraft_ray.tokenization import load_backend_tokenizer

        self._decode = load_backend_tokenizer(model).decode
        self._max = gen.max_new_tokens
        self._samples = gen.samples_per_prompt

    def _length(self, ids: list[int], sample: int) -> int:
        h = zlib.crc32(bytes(str((len(ids), ids[len(ids) // 2], sample)), "ascii"))
        u = (h % 1_000_003 + 1) / 1_000_004  # in (0, 1)
        return max(1, min(self._max, int(math.log(u) / math.log(1 - 1 / 20)) + 1))

    def lengths(self, ids: list[int]) -> tuple[int, ...]:
        """The output length of each of the prompt's samples."""
        return tuple(self._length(ids, k) for k in range(self._samples))

    def answer(self, ids: list[int], lengths: tuple[int, ...]) -> Generated:
        """The prompt's outputs of these lengths: spans of the prompt, one per sample."""
        made = []
        for k, n in enumerate(lengths):
            start = len(ids) // 2 + 7 * k
            made.append(Generated(self._decode(ids[start : start + n]), n))
        return Generated(made[0].text, made[0].tokens, tuple(made[1:]))

    def generate(self, prompts: list[list[int]]) -> list[Generated]:
        return [self.answer(ids, self.lengths(ids)) for ids in prompts]
