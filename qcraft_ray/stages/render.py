"""Passages -> prompts: one row per (passage, type), in the model's exact chat format.

Prompts travel as token ids (the passage was tokenized once, in the passage stage), so
the engine does not tokenize again. Rejected rows pass through untouched. A prompt whose length (template + passage) plus
``max_new_tokens`` would not fit the engine's context is rejected as
``prompt_too_long`` here, before it reaches a replica.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from qcraft_ray import schema as S
from qcraft_ray.prompts import PromptRenderer

NEEDED = (S.STATUS, S.PASSAGE, S.PASSAGE_TOKEN_IDS, S.LANGUAGE)


class PromptBuilder:
    """Fans passages out over types and renders their prompts (no Ray needed)."""

    def __init__(self, tokenizer: Any, types: list[str], model_name: str,
                 max_prompt_tokens: int) -> None:
        self._renderer = PromptRenderer(tokenizer)
        self._types = list(types)
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
            for type_ in self._types:
                ids = self._renderer.render_ids(row[S.PASSAGE], passage_ids, row[S.LANGUAGE],
                                                type_)
                item = {**row, S.TYPE: type_, S.PROMPT_TOKENS: len(ids)}
                if len(ids) > self._max_prompt_tokens:
                    item.update({S.STATUS: S.STATUS_REJECTED, S.REASON: S.REASON_PROMPT_TOO_LONG})
                else:
                    item[S.PROMPT_TOKEN_IDS] = ids
                out.append(item)
        return S.stream_table(out)
