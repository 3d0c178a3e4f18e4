"""Quality signals of ok outputs: the language they are in, and how much they copy.

* Language: lingua (offline, its models ship in the wheel), restricted to the model's 21
  languages, which is what makes it sure on text as short as a query. The most likely
  language goes to ``detected_language`` when it is ``quality.language_margin`` times
  likelier than the next (and, for Han-only text, never as Chinese against Japanese or
  back); a sure identification other than the language
  asked for sets ``wrong_language`` (and, with ``quality.reject_wrong_language``, moves
  the row to ``_rejected/`` with reason ``wrong_language``).
* Copying: ``copied`` when the output, case and whitespace aside, is a span of its
  passage; ``copy_share``, the share of the output's Qwen3 tokens whose text occurs in
  the passage.

Rows that are not ``ok`` keep null signals. Pure cores; :class:`QualityStage` loads the
tokenizer and the detector, with every language's models, once per actor.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.config import ModelConfig, QualityConfig, StorageConfig
from qcraft_ray.languages import LANGUAGES
from qcraft_ray.model_cache import staged
from qcraft_ray.rows import reject, replace
from qcraft_ray.stages.base import Progress, timed
from qcraft_ray.stages.clean import comparable
from qcraft_ray.tokenization import load_backend_tokenizer

NEEDED = (S.STATUS, S.OUTPUT, S.PASSAGE, S.LANGUAGE)


def copy_signals(output: str, passage: str, pieces: list[str]) -> tuple[bool, float]:
    """(whether ``output`` is a span of ``passage``, the share of its token ``pieces``
    whose text occurs in the passage). Pieces that are only whitespace are left out."""
    normal_passage, normal_output = comparable(passage), comparable(output)
    copied = bool(normal_output) and normal_output in normal_passage
    words = [p.strip() for p in pieces if p.strip()]
    if not words:
        return copied, 0.0
    found = sum(1 for w in words if w.casefold() in normal_passage)
    return copied, found / len(words)


# Kana: text with none of it, only Han characters, reads as Chinese or Japanese alike.
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN_PAIR = {"chinese", "japanese"}


class LanguageIdentifier:
    """lingua's detector over the model's languages, in its high-accuracy mode.

    lingua loads a language's models the first time a text in its script needs them;
    with ``preload`` every one of the 21 is loaded now (~3 CPU s, ~600 MB in all), so the
    first blocks of a multilingual corpus do not pay for it (bench/RESULTS-quality.md).
    """

    def __init__(self, margin: float, preload: bool = False) -> None:
        from lingua import Language, LanguageDetectorBuilder

        self._languages = [getattr(Language, name.upper()) for name in LANGUAGES]
        builder = LanguageDetectorBuilder.from_languages(*self._languages)
        if preload:
            builder = builder.with_preloaded_language_models()
        self._detector = builder.build()
        self._margin = margin
        self.preloaded = preload

    def identify(self, text: str, asked: str | None = None) -> str | None:
        """The model language ``text`` is in, or None when lingua is not sure: the most
        likely language is less than ``margin`` times likelier than the next, or the
        text is Han only and the choice is between Chinese and Japanese (``asked``)."""
        values = self._detector.compute_language_confidence_values(text)
        if (
            len(values) < 2
            or values[0].value <= 0  # nothing to go on (digits, punctuation)
            or values[0].value < self._margin * values[1].value
        ):
            return None
        found = str(values[0].language.name).lower()
        if {found, asked} == _HAN_PAIR and not _KANA.search(text):
            return None
        return found


class QualityChecker:
    """Adds the quality columns to a table of stream rows (no Ray needed). Without an
    ``identifier``, builds one when ``cfg.language_id`` is on (``preload``: see
    :class:`LanguageIdentifier`)."""

    def __init__(
        self,
        cfg: QualityConfig,
        tokenizer: Any,
        identifier: LanguageIdentifier | None = None,
        preload: bool = False,
    ) -> None:
        self._cfg = cfg
        self._tokenizer = tokenizer
        self._identifier = identifier
        if cfg.language_id and identifier is None:
            self._identifier = LanguageIdentifier(cfg.language_margin, preload)

    def __call__(self, table: pa.Table) -> pa.Table:
        S.require_columns("quality", NEEDED, table.column_names)
        outputs = table[S.OUTPUT].to_pylist()
        ok = [
            i
            for i, (s, o) in enumerate(zip(table[S.STATUS].to_pylist(), outputs, strict=True))
            if s == S.STATUS_OK and o
        ]
        n = table.num_rows
        detected: list[str | None] = [None] * n
        wrong: list[bool | None] = [None] * n
        copied: list[bool | None] = [None] * n
        share: list[float | None] = [None] * n
        if self._identifier is not None:
            asked = table[S.LANGUAGE].to_pylist()
            for i in ok:
                detected[i] = self._identifier.identify(outputs[i], asked[i])
                wrong[i] = detected[i] is not None and detected[i] != asked[i]
        if self._cfg.copy_check and ok:
            passages = table[S.PASSAGE].to_pylist()
            encoded = self._tokenizer.encode_batch(
                [outputs[i] for i in ok], add_special_tokens=False
            )
            for i, enc in zip(ok, encoded, strict=True):
                pieces = [outputs[i][a:b] for a, b in enc.offsets]
                copied[i], share[i] = copy_signals(outputs[i], passages[i], pieces)
        for name, values, kind in (
            (S.DETECTED_LANGUAGE, detected, pa.string()),
            (S.WRONG_LANGUAGE, wrong, pa.bool_()),
            (S.COPIED, copied, pa.bool_()),
            (S.COPY_SHARE, share, pa.float64()),
        ):
            table = replace(table, name, pa.array(values, kind))
        if self._cfg.reject_wrong_language:
            mask = pc.fill_null(table[S.WRONG_LANGUAGE], False)
            errors = pa.array([f"identified as {d}" if d else None for d in detected], pa.string())
            table = reject(table, mask, S.REASON_WRONG_LANGUAGE, errors)
        return table


class QualityStage:
    """The checker as a Ray Data actor: loads the tokenizer (staged from object storage
    when needed) and every language's models once, when the actor starts (while the
    engines load), so no block waits for them."""

    def __init__(
        self,
        cfg: QualityConfig,
        model: ModelConfig,
        progress: Progress | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        tokenizer = load_backend_tokenizer(
            staged(model, storage, weights=False) if storage else model
        )
        self._checker = QualityChecker(cfg, tokenizer, preload=True)
        self._progress = progress

    def __call__(self, rows: pa.Table) -> pa.Table:
        with timed(self._progress, "quality"):
            return self._checker(rows)
