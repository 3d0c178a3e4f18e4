"""Passages -> prompts: one row per (passage, type), in the model's exact chat format.

Rejected rows pass through untouched. A prompt whose length (template + passage) plus
``max_new_tokens`` would not fit the engine's context is rejected as
``prompt_too_long`` here, before it reaches a replica.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.prompts import PromptRenderer
from qcraft_ray.tokenization import count_tokens

NEEDED = (S.STATUS, S.PASSAGE, S.PASSAGE_TOKENS, S.LANGUAGE)


class PromptBuilder:
    """Fans passages out over types and renders their prompts (no Ray needed)."""

    def __init__(self, tokenizer: Any, types: list[str], model_name: str,
                 max_prompt_tokens: int) -> None:
        self._renderer = PromptRenderer(tokenizer)
        self._tokenizer = tokenizer
        self._types = list(types)
        self._model = model_name
        self._max_prompt_tokens = max_prompt_tokens
        self._overhead: dict[tuple[str, str], int] = {}

    def template_tokens(self, language: str, type_: str) -> int:
        """Tokens the chat template adds around a passage for (language, type)."""
        key = (language, type_)
        if key not in self._overhead:
            empty = self._renderer.render("", language, type_)
            self._overhead[key] = count_tokens(self._tokenizer, [empty])[0]
        return self._overhead[key]

    def __call__(self, passages: pa.Table) -> pa.Table:
        S.require_columns("prompts", NEEDED, passages.column_names)
        out: list[dict] = []
        for row in passages.to_pylist():
            row[S.MODEL] = self._model
            if row[S.STATUS] != S.STATUS_PENDING:
                out.append(row)
                continue
            for type_ in self._types:
                tokens = row[S.PASSAGE_TOKENS] + self.template_tokens(row[S.LANGUAGE], type_)
                item = {**row, S.TYPE: type_, S.PROMPT_TOKENS: tokens}
                if tokens > self._max_prompt_tokens:
                    item.update({S.STATUS: S.STATUS_REJECTED, S.REASON: S.REASON_PROMPT_TOO_LONG})
                else:
                    item[S.PROMPT] = self._renderer.render(row[S.PASSAGE], row[S.LANGUAGE], type_)
                out.append(item)
        return pa.Table.from_pylist(out, schema=S.STREAM_SCHEMA)
