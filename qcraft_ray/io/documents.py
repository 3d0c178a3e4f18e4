"""Source rows -> document tables (:data:`qcraft_ray.schema.DOCUMENT_SCHEMA`); pure.

Documents the reader cannot hand over as text still become rows, with a ``reason``
that the passage stage turns into a rejection: ``invalid_text`` (the text column holds
bytes that are not UTF-8) and ``unreadable`` (the file's data could not be decoded
there; see :func:`~qcraft_ray.io.read.read_fragment`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig
from qcraft_ray.io.plan import InputFile
from qcraft_ray.languages import language_for_code, source_code
from qcraft_ray.ledger.units import unit_id
from qcraft_ray.rows import reject, replace


def _as_string(col: pa.ChunkedArray | None, n: int) -> pa.Array:
    if col is None:
        return pa.nulls(n, pa.string())
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col.combine_chunks()


def to_documents(raw: pa.Table, file: InputFile, first_row: int, cfg: InputConfig) -> pa.Table:
    """Turn a slice of a source file into a document table (pure; unit-tested)."""
    n = raw.num_rows
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    get = lambda name: raw.column(name) if name in raw.column_names else None  # noqa: E731
    ids = get(cfg.id_column)
    fallback = [f"{file.display}#{r}" for r in range(first_row, first_row + n)]
    if ids is None:
        doc_ids = pa.array(fallback, pa.string())
    else:
        doc_ids = pc.coalesce(_as_string(ids, n), pa.array(fallback, pa.string()))

    langs = get("language")
    scripts = get("language_script")
    lang_values = langs.to_pylist() if langs is not None else [None] * n
    script_values = scripts.to_pylist() if scripts is not None else [None] * n
    codes: list[str | None] = []
    models: list[str | None] = []
    for lang, script in zip(lang_values, script_values, strict=True):
        code = source_code(lang, script) or file.path_code
        codes.append(code)
        models.append(
            cfg.language if cfg.language is not None else language_for_code(code, cfg.language_map)
        )

    quality = get(S.QUALITY_SCORE) if get(S.QUALITY_SCORE) is not None else get("score")
    quality_arr = (
        pa.nulls(n, pa.float64())
        if quality is None
        else pc.cast(quality, pa.float64()).combine_chunks()
    )
    columns = {
        S.DOC_ID: doc_ids,
        S.TEXT: _as_string(get(cfg.text_column), n),
        S.LANGUAGE: pa.array(models, pa.string()),
        S.SOURCE_LANGUAGE: pa.array(codes, pa.string()),
        S.SOURCE_FILE: pa.array([file.display] * n, pa.string()),
        S.SOURCE_ROW: rows,
        S.URL: _as_string(get(S.URL), n),
        S.DUMP: _as_string(get(S.DUMP), n),
        S.DATE: _as_string(get(S.DATE), n),
        S.QUALITY_SCORE: quality_arr,
        S.UNIT: pa.array([unit_id(file.display, first_row)] * n, pa.string()),
        S.UNIT_DOCS: pa.array([n] * n, pa.int64()),
        S.REASON: pa.nulls(n, pa.string()),
        S.ERROR: pa.nulls(n, pa.string()),
    }
    table = pa.table(columns, schema=S.DOCUMENT_SCHEMA)
    return _reject_invalid_text(table)


def _reject_invalid_text(docs: pa.Table) -> pa.Table:
    """Rows whose text is not valid UTF-8 lose the text and get reason ``invalid_text``.

    Arrow does not check UTF-8 when it reads Parquet; Python would fail on the whole
    block later. The full check runs once per block; the per-row search only when the
    block fails it."""
    text = docs[S.TEXT].combine_chunks()
    try:
        text.validate(full=True)
        return docs
    except pa.ArrowInvalid:
        pass
    mask = pa.array([_not_utf8(v) for v in pc.cast(text, pa.binary()).to_pylist()])
    docs = replace(docs, S.TEXT, pc.if_else(mask, pa.scalar(None, pa.string()), text))
    return reject(docs, mask, S.REASON_INVALID_TEXT, "text is not valid UTF-8")


def _not_utf8(value: bytes | None) -> bool:
    try:
        return value is not None and not isinstance(value.decode("utf-8"), str)
    except UnicodeDecodeError:
        return True


def unreadable_documents(
    file: InputFile, first_row: int, n: int, cfg: InputConfig, error: BaseException
) -> pa.Table:
    """Placeholder documents for rows whose data could not be decoded."""
    docs = to_documents(pa.table({"__row": pa.nulls(n)}), file, first_row, cfg)
    return reject(
        docs, pa.array([True] * n), S.REASON_UNREADABLE, f"{type(error).__name__}: {error}"
    )
