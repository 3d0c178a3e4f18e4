"""The model's training format: two chat messages, rendered with its own chat template.

system: ``"language: <language>\\ntype: <type>\\n"`` (trailing newline included)
user:   the passage text

Rendered with ``add_generation_prompt=True`` and thinking disabled, which for Qwen3
appends an empty ``<think>\\n\\n</think>\\n\\n`` block after the assistant header.
"""

from __future__ import annotations

from typing import Any

from qcraft_ray.languages import normalize_language

TYPES: tuple[str, ...] = (
    "query",
    "alt_query",
    "keywords",
    "synonym_keywords",
    "title",
    "faq",
    "summary",
)


def normalize_type(value: str) -> str:
    """Validate an output type as the model card's script does (strip + lowercase)."""
    name = str(value).strip().lower()
    if name not in TYPES:
        raise ValueError(f"unsupported type {value!r}; the model supports: {', '.join(TYPES)}")
    return name


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
            head + probe + tail)

    def render_with_template(self, passage: str, language: str, type_: str) -> str:
        return self._tokenizer.apply_chat_template(
            messages(passage, language, type_),
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )

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
        return self._tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids

    def render_ids(self, passage: str, passage_ids: list[int], language: str,
                   type_: str) -> list[int]:
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
