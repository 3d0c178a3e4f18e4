"""Column names and Arrow schemas: defined once, imported everywhere.

A row moves through the pipeline with these columns. Stages check that the columns
they need are present with :func:`require_columns`, which lists what it found.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

# --- row key (stable across runs) ---
DOC_ID = "doc_id"
CHUNK_INDEX = "chunk_index"
TYPE = "type"
SAMPLE_INDEX = "sample_index"  # which of a prompt's samples (0 with one sample a prompt)
KEY_COLUMNS = (DOC_ID, CHUNK_INDEX, TYPE, SAMPLE_INDEX)

# --- passage and provenance ---
CHUNK_START = "chunk_start"
CHUNK_END = "chunk_end"
PASSAGE = "passage"
PASSAGE_TOKENS = "passage_tokens"
LANGUAGE = "language"
SOURCE_LANGUAGE = "source_language"
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"
URL = "url"
DUMP = "dump"
DATE = "date"
QUALITY_SCORE = "quality_score"

TEXT = "text"

# --- generation ---
PROMPT_TOKEN_IDS = "prompt_token_ids"
PASSAGE_TOKEN_IDS = "passage_token_ids"
PROMPT_TOKENS = "prompt_tokens"
REPLICA = "replica"
OUTPUT = "output"
OUTPUT_TOKENS = "output_tokens"
STATUS = "status"
MODEL = "model"
ERROR = "error"
SCORE = "score"  # faithfulness: cosine(output, passage) when scoring is on
# --- quality signals of ok outputs (stages/quality.py) ---
DETECTED_LANGUAGE = "detected_language"  # the output's language, when identified surely
WRONG_LANGUAGE = "wrong_language"  # identified, and not the language asked for
COPIED = "copied"  # the output is a verbatim span of its passage
COPY_SHARE = "copy_share"  # share of the output's tokens found in its passage

# --- work units (resume bookkeeping; internal, never written to data files) ---
UNIT = "unit"  # the read block a row came from: "<source file>@<first row>"
UNIT_DOCS = "unit_docs"  # documents in that block
DOC_ROWS = "doc_rows"  # stream rows the row's document yields
# Counting marks, set where a document's rows are made (passage stage) and kept on the
# first type only where types fan out (prompt stage): exactly one row per document and
# one per passage carries each, so counting never needs to know the configured types.
COUNTS_DOCUMENT = "counts_document"
COUNTS_PASSAGE = "counts_passage"

# --- rejection (rows that were not generated for) ---
REASON = "reason"

# Values of STATUS.
STATUS_PENDING = "pending"  # a prompt waiting for the engine
STATUS_REJECTED = "rejected"  # not generated for; REASON says why
STATUS_OK = "ok"
STATUS_NONE = "none"  # the model answered the literal NONE
STATUS_EMPTY = "empty"  # nothing left after cleaning
STATUS_ERROR = "error"  # the engine failed on this row; ERROR says why
STATUS_DUPLICATE = "duplicate"  # the same text as an earlier sample of its prompt
OUTPUT_STATUSES = (STATUS_OK, STATUS_NONE, STATUS_EMPTY, STATUS_ERROR, STATUS_DUPLICATE)

# Values of REASON.
REASON_MISSING_TEXT = "missing_text"
REASON_TOO_SHORT = "too_short"
REASON_TOO_LONG = "too_long"
REASON_CHUNK_REMAINDER = "chunk_remainder"
REASON_TRUNCATED = "truncated"
REASON_UNSUPPORTED_LANGUAGE = "unsupported_language"
REASON_PROMPT_TOO_LONG = "prompt_too_long"
REASON_NONE_DROPPED = "none_dropped"
REASON_INVALID_TEXT = "invalid_text"  # the text column holds bytes that are not UTF-8
REASON_UNREADABLE = "unreadable"  # the input file's data could not be decoded there
REASON_LOW_SCORE = "low_score"  # below score.min_score
REASON_WRONG_LANGUAGE = "wrong_language"  # with quality.reject_wrong_language
REASONS = (
    REASON_MISSING_TEXT,
    REASON_TOO_SHORT,
    REASON_TOO_LONG,
    REASON_CHUNK_REMAINDER,
    REASON_TRUNCATED,
    REASON_UNSUPPORTED_LANGUAGE,
    REASON_PROMPT_TOO_LONG,
    REASON_NONE_DROPPED,
    REASON_INVALID_TEXT,
    REASON_UNREADABLE,
    REASON_LOW_SCORE,
    REASON_WRONG_LANGUAGE,
)

# A row's identity inside one input corpus: unique even when the input repeats a doc_id
# (each input row is its own document). Resume matches written rows on it.
ROW_IDENTITY = (SOURCE_FILE, SOURCE_ROW, CHUNK_INDEX, TYPE, SAMPLE_INDEX)

# Source columns carried into the output when the input has them (null otherwise).
PROVENANCE_COLUMNS = (URL, DUMP, DATE, QUALITY_SCORE)

# The output schema's version: in _report.json and in every file's Parquet metadata
# (key SCHEMA_VERSION_KEY). Bumped when a column is renamed, removed or changes type or
# meaning; adding a nullable column bumps it too, so readers can tell files apart.
# 2: sample_index (in the row key), status duplicate, detected_language, wrong_language,
# copied, copy_share
SCHEMA_VERSION = 2
SCHEMA_VERSION_KEY = b"qcraft.schema_version"

OUTPUT_SCHEMA = pa.schema(
    [
        pa.field(DOC_ID, pa.string(), nullable=False),
        pa.field(CHUNK_INDEX, pa.int32(), nullable=False),
        pa.field(TYPE, pa.string(), nullable=False),
        pa.field(SAMPLE_INDEX, pa.int32(), nullable=False),
        pa.field(CHUNK_START, pa.int64(), nullable=False),
        pa.field(CHUNK_END, pa.int64(), nullable=False),
        pa.field(PASSAGE, pa.string(), nullable=False),
        pa.field(PASSAGE_TOKENS, pa.int32(), nullable=False),
        pa.field(LANGUAGE, pa.string(), nullable=False),
        pa.field(SOURCE_LANGUAGE, pa.string()),
        pa.field(OUTPUT, pa.string()),
        pa.field(PROMPT_TOKENS, pa.int32()),
        pa.field(OUTPUT_TOKENS, pa.int32()),
        pa.field(STATUS, pa.string(), nullable=False),
        pa.field(ERROR, pa.string()),
        pa.field(SCORE, pa.float64()),
        pa.field(DETECTED_LANGUAGE, pa.string()),
        pa.field(WRONG_LANGUAGE, pa.bool_()),
        pa.field(COPIED, pa.bool_()),
        pa.field(COPY_SHARE, pa.float64()),
        pa.field(MODEL, pa.string(), nullable=False),
        pa.field(SOURCE_FILE, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
        pa.field(URL, pa.string()),
        pa.field(DUMP, pa.string()),
        pa.field(DATE, pa.string()),
        pa.field(QUALITY_SCORE, pa.float64()),
    ]
)

# `qcraft passages` (pre-chunking, no generation): one row per passage.
_NOT_IN_PASSAGES = {
    TYPE,
    SAMPLE_INDEX,
    OUTPUT,
    PROMPT_TOKENS,
    OUTPUT_TOKENS,
    STATUS,
    ERROR,
    MODEL,
    SCORE,
    DETECTED_LANGUAGE,
    WRONG_LANGUAGE,
    COPIED,
    COPY_SHARE,
}
PASSAGES_SCHEMA = pa.schema([f for f in OUTPUT_SCHEMA if f.name not in _NOT_IN_PASSAGES])

REJECTED_SCHEMA = pa.schema(
    [
        pa.field(DOC_ID, pa.string(), nullable=False),
        pa.field(CHUNK_INDEX, pa.int32()),
        pa.field(TYPE, pa.string()),
        pa.field(SAMPLE_INDEX, pa.int32()),  # set for rows rejected after generation
        pa.field(CHUNK_START, pa.int64()),
        pa.field(CHUNK_END, pa.int64()),
        pa.field(PASSAGE_TOKENS, pa.int32()),
        pa.field(LANGUAGE, pa.string()),
        pa.field(SOURCE_LANGUAGE, pa.string()),
        pa.field(SOURCE_FILE, pa.string(), nullable=False),
        pa.field(SOURCE_ROW, pa.int64(), nullable=False),
        pa.field(REASON, pa.string(), nullable=False),
        pa.field(ERROR, pa.string()),
        pa.field(SCORE, pa.float64()),  # set for low_score rejections
    ]
)

# Documents as the reader hands them to the passage stage.
DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field(DOC_ID, pa.string()),
        pa.field(TEXT, pa.string()),
        pa.field(LANGUAGE, pa.string()),
        pa.field(SOURCE_LANGUAGE, pa.string()),
        pa.field(SOURCE_FILE, pa.string()),
        pa.field(SOURCE_ROW, pa.int64()),
        pa.field(URL, pa.string()),
        pa.field(DUMP, pa.string()),
        pa.field(DATE, pa.string()),
        pa.field(QUALITY_SCORE, pa.float64()),
        pa.field(UNIT, pa.string()),
        pa.field(UNIT_DOCS, pa.int64()),
        pa.field(REASON, pa.string()),  # set when the reader could not give the text
        pa.field(ERROR, pa.string()),
    ]
)

# What flows between stages: every output and rejected column, plus token ids and the
# replica, all nullable. Rejected rows ride along (status "rejected") so one stream
# accounts for every document.
STREAM_SCHEMA = pa.schema(
    [f.with_nullable(True) for f in OUTPUT_SCHEMA]
    + [
        pa.field(REASON, pa.string()),
        pa.field(PASSAGE_TOKEN_IDS, pa.list_(pa.int32())),  # the passage, tokenized once
        pa.field(PROMPT_TOKEN_IDS, pa.list_(pa.int32())),  # what the engine receives
        pa.field(REPLICA, pa.string()),  # which engine replica generated the row
        pa.field(UNIT, pa.string()),
        pa.field(UNIT_DOCS, pa.int64()),
        pa.field(DOC_ROWS, pa.int64()),
        pa.field(COUNTS_DOCUMENT, pa.bool_()),
        pa.field(COUNTS_PASSAGE, pa.bool_()),
    ]
)


class MissingColumnsError(ValueError):
    """A stage got a batch without the columns it needs."""


def require_columns(stage: str, needed: Iterable[str], found: Iterable[str]) -> None:
    """Raise :class:`MissingColumnsError` naming what is missing and what was found."""
    found_list = list(found)
    missing = [c for c in needed if c not in found_list]
    if missing:
        raise MissingColumnsError(
            f"stage {stage!r} needs columns {missing} that are not in its input; "
            f"input columns: {sorted(found_list)}"
        )


def to_stream(table: pa.Table) -> pa.Table:
    """Output or rejected rows widened to the stream schema (absent columns null;
    rows of a rejected file get status ``rejected``)."""
    cols = {
        f.name: (
            table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        )
        for f in STREAM_SCHEMA
    }
    if STATUS not in table.column_names and REASON in table.column_names:
        cols[STATUS] = pa.array([STATUS_REJECTED] * table.num_rows, pa.string())
    return pa.table(cols, schema=STREAM_SCHEMA)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order and types."""
    return table.select(schema.names).cast(schema)


def versioned(table: pa.Table) -> pa.Table:
    """``table`` with the schema version in its metadata (as every file written has)."""
    meta = dict(table.schema.metadata or {})
    meta[SCHEMA_VERSION_KEY] = str(SCHEMA_VERSION).encode()
    return table.replace_schema_metadata(meta)


def schema_version_of(schema: pa.Schema) -> int | None:
    """The version a file's schema says it was written with (None: not ours)."""
    value = (schema.metadata or {}).get(SCHEMA_VERSION_KEY)
    return int(value) if value is not None else None


def stream_table(rows: list[dict], columns: Iterable[str] | None = None) -> pa.Table:
    """Stream rows (dicts; absent keys are null) as a table with the stream schema.

    ``columns``: the only keys the rows may hold (a stage that knows its columns skips
    looking up the others). Built column by column, not with ``pa.Table.from_pylist``,
    which is slower on passage rows (bench/RESULTS-passages.md)."""
    keep = set(columns) if columns is not None else None
    return pa.Table.from_pydict(
        {
            f.name: (
                [r.get(f.name) for r in rows]
                if keep is None or f.name in keep
                else pa.nulls(len(rows), f.type)
            )
            for f in STREAM_SCHEMA
        },
        schema=STREAM_SCHEMA,
    )


def empty_stream_table() -> pa.Table:
    """A zero-row table with the stream schema."""
    return STREAM_SCHEMA.empty_table()
