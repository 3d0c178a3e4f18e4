"""Documents -> passages: truncate, count Qwen3 tokens, filter, chunk; rejects by reason.

:func:`make_passages` is a pure function of a document table (plus a tokenizer) and is
unit-tested without Ray. Every document leaves as at least one row: passage rows
(status ``pending``) and/or rejected rows (status ``rejected`` with a reason).
Chunk indexes number every span of a document in text order, kept or rejected, so
``(doc_id, chunk_index)`` is unique across the output and ``_rejected/``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.config import ModelConfig, PassageConfig, StorageConfig
from qcraft_ray.ledger.units import drop_written, with_doc_rows
from qcraft_ray.model_cache import staged
from qcraft_ray.rows import replace
from qcraft_ray.stages.base import Progress, timed
from qcraft_ray.stages.chunking import Span, chunk_spans, trim
from qcraft_ray.tokenization import encode, load_tokenizer, span_token_ids, token_starts

NEEDED = (S.DOC_ID, S.TEXT, S.LANGUAGE, S.SOURCE_LANGUAGE, S.SOURCE_FILE, S.SOURCE_ROW)
_MARGIN = 2
# Documents tokenized at a time: a block's encodings are freed every this many documents,
# which bounds the stage's memory for large blocks (sizes measured in
# bench/RESULTS-passages.md and bench/RESULTS-memory.md).
_ENCODE_BATCH = 1000
_CARRIED = (
    S.DOC_ID,
    S.LANGUAGE,
    S.SOURCE_LANGUAGE,
    S.SOURCE_FILE,
    S.SOURCE_ROW,
    *S.PROVENANCE_COLUMNS,
    S.UNIT,
    S.UNIT_DOCS,
)
_COLUMNS = (
    *_CARRIED,
    S.CHUNK_INDEX,
    S.CHUNK_START,
    S.CHUNK_END,
    S.STATUS,
    S.REASON,
    S.ERROR,
    S.PASSAGE,
    S.PASSAGE_TOKENS,
    S.PASSAGE_TOKEN_IDS,
)  # what this stage's rows hold


def _row(doc: dict[str, Any], index: int, start: int, end: int, **values: Any) -> dict:
    row = {c: doc.get(c) for c in _CARRIED}
    row.update({S.CHUNK_INDEX: index, S.CHUNK_START: start, S.CHUNK_END: end}, **values)
    return row


def _rejected(
    doc: dict, index: int, start: int, end: int, reason: str, tokens: int | None = None
) -> dict:
    return _row(
        doc,
        index,
        start,
        end,
        **{S.STATUS: S.STATUS_REJECTED, S.REASON: reason, S.PASSAGE_TOKENS: tokens},
    )


def _split_doc(
    text: str, enc: Any, cfg: PassageConfig, language: str, tokenizer: Any
) -> tuple[list[Span], list[Span], tuple[list[int], list[int]] | None]:
    """(kept spans, too-short spans, (token ids, token start offsets) if needed)."""
    hi = cfg.max_tokens_for(language)
    n = len(enc)  # not len(enc.ids): that builds a Python list just to count it
    if n < cfg.min_tokens:
        return [], [Span(0, len(text), n)], None
    if n <= hi:
        a, b = trim(text, 0, len(text))
        return [Span(a, b, n)], [], None
    ids = enc.ids  # built once per document: each access makes a new list
    starts = token_starts(tokenizer, text, enc, ids)  # only long documents need them
    # Chunk with a small margin: a passage counted on its own text can differ by a
    # token or two from its share of the whole-text count.
    kept, short = chunk_spans(text, starts, cfg.min_tokens + _MARGIN, hi - 2 * _MARGIN)
    return kept, short, (ids, starts)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, restoring its state after.

    The stage allocates millions of short-lived objects per block (token-id lists, rows,
    and the offsets' tuples when they are read), each 700 of which would start a
    collection that walks live objects. The stage makes no reference cycles, so nothing
    waits on the collector; plain reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def make_passages(docs: pa.Table, cfg: PassageConfig, tokenizer: Any) -> pa.Table:
    """Turn a document table into stream rows (passages and rejections)."""
    S.require_columns("passages", NEEDED, docs.column_names)
    with _cyclic_gc_paused():
        return _make_passages(docs, cfg, tokenizer)


def _make_passages(docs: pa.Table, cfg: PassageConfig, tokenizer: Any) -> pa.Table:
    records = docs.to_pylist()
    out: list[dict] = []
    work: list[tuple[dict, str]] = []  # (doc, truncated text) to tokenize
    for doc in records:
        text = doc[S.TEXT]
        if doc.get(S.REASON):  # the reader could not give this document's text
            out.append({**_rejected(doc, 0, 0, 0, doc[S.REASON]), S.ERROR: doc.get(S.ERROR)})
        elif text is None or not text.strip():
            out.append(_rejected(doc, 0, 0, len(text or ""), S.REASON_MISSING_TEXT))
        elif doc[S.LANGUAGE] is None:
            out.append(_rejected(doc, 0, 0, len(text), S.REASON_UNSUPPORTED_LANGUAGE))
        else:
            limit = cfg.max_chars if cfg.max_chars is not None else len(text)
            work.append((doc, text[:limit]))

    for i in range(0, len(work), _ENCODE_BATCH):
        out.extend(_tokenized(work[i : i + _ENCODE_BATCH], cfg, tokenizer))
    out.sort(key=lambda r: (r[S.SOURCE_ROW], r[S.SOURCE_FILE], r[S.CHUNK_INDEX]))
    return _marked(S.stream_table(out, columns=_COLUMNS))


def _marked(rows: pa.Table) -> pa.Table:
    """Mark each document's first row (chunk 0) and each passage as the rows that count
    them (:data:`~qcraft_ray.schema.COUNTS_DOCUMENT`, ``COUNTS_PASSAGE``)."""
    rows = replace(rows, S.COUNTS_DOCUMENT, pc.equal(rows[S.CHUNK_INDEX], 0))
    return replace(rows, S.COUNTS_PASSAGE, pc.equal(rows[S.STATUS], S.STATUS_PENDING))


def block_key(docs: pa.Table) -> str | None:
    """What a block of documents is, for counting it once: its first document.

    Not its work unit: Ray Data may split a read block (one unit) into several blocks
    (``SplitBlocks(k)`` in its log), each a run of the unit's rows, and each is counted.
    """
    if not docs.num_rows:
        return None
    return f"docs:{docs[S.SOURCE_FILE][0].as_py()}@{docs[S.SOURCE_ROW][0].as_py()}"


def pending_rows(rows: pa.Table) -> int:
    """Rows waiting for the engine (passages, or prompts)."""
    return int(pc.sum(pc.equal(rows[S.STATUS], S.STATUS_PENDING)).as_py() or 0)


class PassageMaker:
    """:func:`make_passages` with the model's tokenizer, loaded once (staged from object
    storage when ``storage`` is given and the model lives there)."""

    def __init__(
        self, passages: PassageConfig, model: ModelConfig, storage: StorageConfig | None = None
    ) -> None:
        self.cfg = passages
        self.tokenizer = load_tokenizer(staged(model, storage, weights=False) if storage else model)

    def __call__(self, docs: pa.Table) -> pa.Table:
        return make_passages(docs, self.cfg, self.tokenizer)


class PassageStage:
    """Documents -> passage rows (``qcraft passages``); a resumed run drops rows it
    already wrote."""

    def __init__(
        self,
        passages: PassageConfig,
        model: ModelConfig,
        written: pa.Table | None = None,
        progress: Progress | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        """``storage``: how to reach a model on object storage (its tokenizer is staged)."""
        self._make = PassageMaker(passages, model, storage)
        self._written = written
        self._progress = progress

    def __call__(self, docs: pa.Table) -> pa.Table:
        with timed(self._progress, "passages", once=block_key(docs)) as counters:
            rows = drop_written(with_doc_rows(self._make(docs)), self._written)
            counters.update(documents_read=docs.num_rows, passages=pending_rows(rows))
        return rows


def _tokenized(work: list[tuple[dict, str]], cfg: PassageConfig, tokenizer: Any) -> list[dict]:
    """Rows for documents with text: tokenize, filter, chunk, re-count."""
    out: list[dict] = []
    encodings = encode(tokenizer, [t for _, t in work])
    # (row, span, text, (document encoding, (its ids, token start offsets) or None))
    pending: list[tuple[dict, Span, str, Any]] = []
    for (doc, text), enc in zip(work, encodings, strict=True):
        kept, short, tokens = _split_doc(text, enc, cfg, doc[S.LANGUAGE], tokenizer)
        spans = sorted(
            [(s, True) for s in kept] + [(s, False) for s in short], key=lambda x: x[0].start
        )
        index = -1
        for index, (span, keep) in enumerate(spans):
            if keep:
                pending.append(
                    (
                        _row(
                            doc,
                            index,
                            span.start,
                            span.end,
                            **{S.PASSAGE: text[span.start : span.end]},
                        ),
                        span,
                        text,
                        (enc, tokens),
                    )
                )
            else:
                reason = S.REASON_TOO_SHORT if not kept else S.REASON_CHUNK_REMAINDER
                out.append(_rejected(doc, index, span.start, span.end, reason, span.tokens))
        full = len(doc[S.TEXT])
        if len(text) < full:
            out.append(_rejected(doc, index + 1, len(text), full, S.REASON_TRUNCATED))

    out.extend(_recount(pending, cfg, tokenizer))
    return out


def _passage_ids(pending: list[tuple[dict, Span, str, Any]], tokenizer: Any) -> list[list[int]]:
    """Exact token ids of each passage as if tokenized on its own.

    A passage equal to its whole document keeps the document's ids. A chunk reuses the
    document's ids between stable split points near its ends and encodes only the two
    short edges (:func:`~qcraft_ray.tokenization.span_token_ids`), so long documents are
    not tokenized twice; without such points the chunk is encoded whole. The result
    equals encoding the chunk text (tested on every sample language).
    """
    ids: list[list[int] | None] = [None] * len(pending)
    edges: list[str] = []
    plans: list[tuple[int, Any]] = []
    whole: list[int] = []
    for i, (_, span, text, (enc, tokens)) in enumerate(pending):
        if tokens is None:  # a document short enough to be one passage
            if span.start == 0 and span.end == len(text):
                ids[i] = enc.ids
            else:  # trimmed of surrounding whitespace: encode the passage itself
                whole.append(i)
            continue
        doc_ids, starts = tokens
        if span.start == 0 and span.end == len(text):
            ids[i] = doc_ids
            continue
        split = span_token_ids(text, doc_ids, starts, span.start, span.end)
        if split is None:
            whole.append(i)
        else:
            (a, b), middle, (c, d) = split
            plans.append((i, middle))
            edges += [text[a:b], text[c:d]]
    for i, fresh in zip(
        whole, encode(tokenizer, [pending[i][0][S.PASSAGE] for i in whole]), strict=True
    ):
        ids[i] = fresh.ids
    encoded = encode(tokenizer, edges)
    for n, (i, middle) in enumerate(plans):
        ids[i] = encoded[2 * n].ids + middle + encoded[2 * n + 1].ids
    return ids  # type: ignore[return-value]


def _recount(
    pending: list[tuple[dict, Span, str, Any]], cfg: PassageConfig, tokenizer: Any
) -> list[dict]:
    """Count each passage on its own tokens; the whole-text count can differ at the edges.

    The token ids go downstream so the engine never tokenizes the passage again.
    Passages that fall outside the bounds after re-counting are rejected with the reason
    that fits; this is rare (a token or two at a cut) and counted like any rejection.
    """
    rows = []
    for (row, _, _, _), ids in zip(pending, _passage_ids(pending, tokenizer), strict=True):
        tokens = len(ids)
        hi = cfg.max_tokens_for(row[S.LANGUAGE])
        if tokens < cfg.min_tokens or tokens > hi:
            row.pop(S.PASSAGE)
            rows.append(
                {
                    **row,
                    S.STATUS: S.STATUS_REJECTED,
                    S.PASSAGE_TOKENS: tokens,
                    S.REASON: S.REASON_CHUNK_REMAINDER
                    if tokens < cfg.min_tokens
                    else S.REASON_TOO_LONG,
                }
            )
        else:
            rows.append(
                {
                    **row,
                    S.STATUS: S.STATUS_PENDING,
                    S.PASSAGE_TOKENS: tokens,
                    S.PASSAGE_TOKEN_IDS: ids,
                }
            )
    return rows
