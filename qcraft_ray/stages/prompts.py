"""Prompts: the model's training format, rendered with its own chat template, one row per
(passage, type). Everything about prompts lives here.

system: ``"language: <language>\\ntype: <type>\\n"`` (trailing newline included)
user:   the passage text

Rendered with ``add_generation_prompt=True`` and thinking disabled, which for Qwen3
appends an empty ``<think>\\n\\n</think>\\n\\n`` block after the assistant header.
Prompts travel as token ids (the passage was tokenized once, in the passage stage), so
the engine does not tokenize again. A prompt whose length plus ``max_new_tokens`` would
not fit the engine's context is rejected as ``prompt_too_long`` before it reaches a
replica. Rejected rows pass through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.config import GenerationConfig, ModelConfig, PassageConfig, StorageConfig
from qcraft_ray.languages import normalize_language
from qcraft_ray.ledger.units import drop_written, with_doc_rows
from qcraft_ray.output_types import draw_types, normalize_type
from qcraft_ray.stages.base import Progress, timed
from qcraft_ray.stages.passages import PassageMaker, block_key, pending_rows

NEEDED = (S.STATUS, S.PASSAGE, S.PASSAGE_TOKEN_IDS, S.LANGUAGE)


def system_message(language: str, type_: str) -> str:
    return f"language: {normalize_language(language)}\ntype: {normalize_type(type_)}\n"


def messages(passage: str, language: str, type_: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_message(language, type_)},
        {"role": "user", "content": passage},
    ]


class PromptRenderer:
    """Renders prompts with a tokenizer's own chat template, thinking disabled.

    The template is rendered once per (language, type) with a sentinel passage and
    the passage is substituted: the Qwen3 template copies the user message verbatim,
    and the constructor checks that on a probe, so the result is byte-identical to
    ``apply_chat_template`` (a unit test compares both on every sample passage).
    """

    _SENTINEL = "\x00QCRAFT_PASSAGE\x00"

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._templates: dict[tuple[str, str], tuple[str, str]] = {}
        self._template_ids: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
        probe = "  a probe\n with spaces \n"
        head, tail = self._split("english", "query")
        self._verbatim = self.render_with_template(probe, "english", "query") == (
            head + probe + tail
        )

    def render_with_template(self, passage: str, language: str, type_: str) -> str:
        text = self._tokenizer.apply_chat_template(
            messages(passage, language, type_),
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )
        return str(text)

    def _split(self, language: str, type_: str) -> tuple[str, str]:
        key = (language, type_)
        if key not in self._templates:
            text = self.render_with_template(self._SENTINEL, language, type_)
            if text.count(self._SENTINEL) != 1:
                raise ValueError("chat template does not copy the user message exactly once")
            head, tail = text.split(self._SENTINEL)
            self._templates[key] = (head, tail)
        return self._templates[key]

    def render(self, passage: str, language: str, type_: str) -> str:
        if not self._verbatim:
            return self.render_with_template(passage, language, type_)
        head, tail = self._split(language, type_)
        return head + passage + tail

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)

    def render_ids(
        self, passage: str, passage_ids: list[int], language: str, type_: str
    ) -> list[int]:
        """Token ids of :meth:`render`, reusing the passage's own token ids.

        The template's head ends in a newline and its tail starts with the special token
        ``<|im_end|>``, and Qwen's pre-tokenizer never merges across either, so the ids
        of head + passage + tail are the three encodings joined (for a passage without
        leading or trailing whitespace, which passages never have). A unit test checks
        this against encoding the rendered prompt, for every sample passage and type.
        """
        if not self._verbatim or passage != passage.strip():
            return self._encode(self.render(passage, language, type_))
        key = (language, type_)
        if key not in self._template_ids:
            head, tail = self._split(language, type_)
            self._template_ids[key] = (self._encode(head), self._encode(tail))
        head_ids, tail_ids = self._template_ids[key]
        return head_ids + list(passage_ids) + tail_ids


@dataclass(frozen=True)
class TypeDraw:
    """Which types a passage gets: all of them, or ``k`` drawn per passage."""

    types: tuple[str, ...]
    k: int | None = None  # None: all
    weights: tuple[tuple[str, float], ...] = ()
    seed: int = 0

    @classmethod
    def of(cls, gen: GenerationConfig) -> TypeDraw:
        k = None if gen.types_per_passage == "all" else int(gen.types_per_passage)
        return cls(tuple(gen.types), k, tuple(sorted(gen.type_weights.items())), gen.types_seed)

    def __call__(self, doc_id: str, chunk_index: int) -> list[str]:
        if self.k is None:
            return list(self.types)
        return draw_types(doc_id, chunk_index, self.types, self.k, dict(self.weights), self.seed)


class PromptBuilder:
    """Fans passages out over their types and renders their prompts (no Ray needed).

    A passage row's counting marks (``counts_document``, ``counts_passage``) stay on its
    first type's row only, so each document and passage is still counted once."""

    def __init__(
        self,
        tokenizer: Any,
        types: list[str] | TypeDraw,
        model_name: str,
        max_prompt_tokens: int,
    ) -> None:
        self._renderer = PromptRenderer(tokenizer)
        self._draw = types if isinstance(types, TypeDraw) else TypeDraw(tuple(types))
        self._model = model_name
        self._max_prompt_tokens = max_prompt_tokens

    def template_tokens(self, language: str, type_: str) -> int:
        """Tokens the chat template adds around a passage for (language, type)."""
        return len(self._renderer.render_ids("", [], language, type_))

    def __call__(self, passages: pa.Table) -> pa.Table:
        S.require_columns("prompts", NEEDED, passages.column_names)
        out: list[dict] = []
        for row in passages.to_pylist():
            row[S.MODEL] = self._model
            if row[S.STATUS] != S.STATUS_PENDING:
                out.append(row)
                continue
            passage_ids = row.pop(S.PASSAGE_TOKEN_IDS)
            for i, type_ in enumerate(self._draw(row[S.DOC_ID], row[S.CHUNK_INDEX])):
                ids = self._renderer.render_ids(row[S.PASSAGE], passage_ids, row[S.LANGUAGE], type_)
                item = {**row, S.TYPE: type_, S.PROMPT_TOKENS: len(ids)}
                if i:
                    item.update({S.COUNTS_DOCUMENT: False, S.COUNTS_PASSAGE: False})
                if len(ids) > self._max_prompt_tokens:
                    item.update({S.STATUS: S.STATUS_REJECTED, S.REASON: S.REASON_PROMPT_TOO_LONG})
                else:  # the prompt of sample 0 (and of the others, if any)
                    item.update({S.PROMPT_TOKEN_IDS: ids, S.SAMPLE_INDEX: 0})
                out.append(item)
        return S.stream_table(out)


class PromptStage:
    """Documents -> passages -> prompts in one task; a resumed run drops rows it already
    wrote. Loads the tokenizer and renders the chat template's parts once."""

    def __init__(
        self,
        passages: PassageConfig,
        model: ModelConfig,
        types: list[str] | TypeDraw,
        max_prompt_tokens: int,
        written: pa.Table | None = None,
        samples: int = 1,
        progress: Progress | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        """``storage``: how to reach a model on object storage (its tokenizer is staged)."""
        self._make = PassageMaker(passages, model, storage)
        self.builder = PromptBuilder(self._make.tokenizer, types, model.name, max_prompt_tokens)
        self._written = written
        self._samples = samples
        self._progress = progress

    def __call__(self, docs: pa.Table) -> pa.Table:
        with timed(self._progress, "passages_prompts", once=block_key(docs)) as counters:
            chunks = self._make(docs)
            rows = drop_written(with_doc_rows(self.builder(chunks), self._samples), self._written)
            counters.update(
                documents_read=docs.num_rows,
                passages=pending_rows(chunks),
                prompts=pending_rows(rows),
            )
        return rows
