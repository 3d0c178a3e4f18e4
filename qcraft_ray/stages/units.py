"""Work units: what resume counts and skips (pure Arrow functions, no Ray).

A unit is one block as the reader yields it: ``rows_per_task`` consecutive documents of
one file, named ``"<source file>@<first row>"``; every row carries its unit and the
unit's document count. The prompt stage stamps each row with ``doc_rows``, the number
of stream rows its document yields (a document is one input row, so all its rows are
made in the same call). Write tasks record per unit: rows written, the ``doc_rows`` of
the documents whose *anchor* row they wrote (chunk 0, first type; see
:mod:`qcraft_ray.report`) and how many anchors. A unit is complete when every document
has its anchor written and the rows written equal the sum of their ``doc_rows``: exact
integer bookkeeping that does not depend on how Ray Data cuts blocks.

On resume a complete unit is not read again; any other unit is read again and only its
rows that are not already written go on to the engine.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S

# Per unit: [rows written, sum of doc_rows over anchors written, anchors written, docs].
UnitCounts = dict[str, list[int]]


def unit_id(source_file: str, first_row: int) -> str:
    return f"{source_file}@{first_row}"


def with_doc_rows(rows: pa.Table) -> pa.Table:
    """Set ``doc_rows``: how many rows each row's document yields in ``rows``."""
    S.require_columns("doc rows", (S.SOURCE_FILE, S.SOURCE_ROW), rows.column_names)
    if not rows.num_rows:
        return rows
    keys = [S.SOURCE_FILE, S.SOURCE_ROW]
    sizes = rows.select(keys).group_by(keys).aggregate([([], "count_all")])
    indexed = rows.select(keys).append_column("__i", pa.array(range(rows.num_rows)))
    joined = indexed.join(sizes, keys).sort_by("__i")
    return rows.set_column(rows.schema.get_field_index(S.DOC_ROWS), S.DOC_ROWS,
                           pc.cast(joined["count_all"], pa.int64()))


def is_anchor(rows: pa.Table, first_type: str | None) -> pa.ChunkedArray:
    """The one row per document that counts it: chunk 0, no type or the first type."""
    typed = pc.equal(rows[S.TYPE], first_type) if first_type else pa.scalar(False)
    type_ok = pc.or_kleene(pc.is_null(rows[S.TYPE]), typed)
    return pc.fill_null(pc.and_kleene(pc.equal(rows[S.CHUNK_INDEX], 0), type_ok), False)


def identity(table: pa.Table) -> pa.Table:
    """The :data:`~qcraft_ray.schema.ROW_IDENTITY` columns, nulls made comparable."""
    cols = {c: table[c] for c in S.ROW_IDENTITY}
    cols[S.CHUNK_INDEX] = pc.cast(pc.fill_null(cols[S.CHUNK_INDEX], -1), pa.int64())
    cols[S.TYPE] = pc.fill_null(cols[S.TYPE], "")
    cols[S.SOURCE_ROW] = pc.cast(cols[S.SOURCE_ROW], pa.int64())
    return pa.table(cols)


def drop_written(rows: pa.Table, written: pa.Table | None) -> pa.Table:
    """Rows whose identity is not in ``written`` (an :func:`identity` table)."""
    if written is None or not written.num_rows or not rows.num_rows:
        return rows
    keyed = identity(rows).append_column("__i", pa.array(range(rows.num_rows), pa.int64()))
    keep = keyed.join(written, list(S.ROW_IDENTITY), join_type="left anti")["__i"]
    return rows.take(pc.take(keep, pc.sort_indices(keep)))  # keep the input order


def count_units(rows: pa.Table, first_type: str | None) -> UnitCounts:
    """Unit bookkeeping for a table about to be written (output and rejected together)."""
    if not rows.num_rows:
        return {}
    anchor = is_anchor(rows, first_type)
    t = pa.table({"u": rows[S.UNIT], "a": pc.cast(anchor, pa.int64()),
                  "e": pc.if_else(anchor, rows[S.DOC_ROWS], 0), "d": rows[S.UNIT_DOCS]})
    stats = t.group_by("u").aggregate([([], "count_all"), ("e", "sum"), ("a", "sum"),
                                       ("d", "max")])
    return {u: [w, e, a, d] for u, w, e, a, d in zip(
        *(stats[c].to_pylist() for c in ("u", "count_all", "e_sum", "a_sum", "d_max")))}


def merge_units(parts: Iterable[UnitCounts]) -> UnitCounts:
    """Add unit bookkeeping across write tasks (and attempts)."""
    total: UnitCounts = {}
    for part in parts:
        for unit, (w, e, a, d) in part.items():
            seen = total.setdefault(unit, [0, 0, 0, d])
            seen[0] += w
            seen[1] += e
            seen[2] += a
    return total


def is_complete(counts: list[int]) -> bool:
    written, expected, anchors, docs = counts
    return anchors == docs and written == expected


def is_overfull(counts: list[int]) -> bool:
    """More rows or anchors than the unit can have: rows were written twice."""
    written, expected, anchors, docs = counts
    return anchors > docs or (anchors == docs and written > expected)
