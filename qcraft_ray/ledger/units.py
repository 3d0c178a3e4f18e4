"""Work units: what resume counts and skips (pure Arrow functions, no Ray).

A unit is one block as the reader yields it: ``rows_per_task`` consecutive documents of
one file, named ``"<source file>@<first row>"``; every row carries its unit and the
unit's document count. The prompt stage stamps each row with ``doc_rows``, the number
of stream rows its document yields (a document is one input row, so all its rows are
made in the same call). Write tasks record per unit (:class:`UnitCounts`): rows written,
the ``doc_rows`` of the documents whose counting row (``counts_document``) they wrote, and
how many such documents. A unit is complete when every document's counting row is
written and the rows written equal the sum of their ``doc_rows``: exact integer
bookkeeping that does not depend on how Ray Data cuts blocks.

On resume a complete unit is not read again; any other unit is read again and only its
rows that are not already written go on to the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.rows import replace


@dataclass(frozen=True)
class UnitCounts:
    """One unit's bookkeeping, summed over the write tasks that hold its rows."""

    rows_written: int  # rows of the unit committed
    rows_expected: int  # sum of doc_rows over the documents counted below
    documents_written: int  # documents whose counting row is committed
    documents: int  # documents in the unit

    def __add__(self, other: UnitCounts) -> UnitCounts:
        return UnitCounts(
            self.rows_written + other.rows_written,
            self.rows_expected + other.rows_expected,
            self.documents_written + other.documents_written,
            max(self.documents, other.documents),
        )

    @property
    def complete(self) -> bool:
        return self.documents_written == self.documents and self.rows_written == self.rows_expected

    @property
    def overfull(self) -> bool:
        """More rows or documents than the unit can have: rows were written twice."""
        return self.documents_written > self.documents or (
            self.documents_written == self.documents and self.rows_written > self.rows_expected
        )


def unit_id(source_file: str, first_row: int) -> str:
    return f"{source_file}@{first_row}"


def with_doc_rows(rows: pa.Table, samples: int = 1) -> pa.Table:
    """Set ``doc_rows``: how many rows each row's document yields from ``rows``: a
    pending prompt becomes ``samples`` rows, any other row stays one."""
    S.require_columns("doc rows", (S.SOURCE_FILE, S.SOURCE_ROW), rows.column_names)
    if not rows.num_rows:
        return rows
    keys = [S.SOURCE_FILE, S.SOURCE_ROW]
    pending = pc.fill_null(pc.equal(rows[S.STATUS], S.STATUS_PENDING), False)
    weight = pc.if_else(pending, pa.scalar(samples, pa.int64()), pa.scalar(1, pa.int64()))
    sizes = rows.select(keys).append_column("w", weight).group_by(keys).aggregate([("w", "sum")])
    indexed = rows.select(keys).append_column("__i", pa.array(range(rows.num_rows)))
    joined = indexed.join(sizes, keys).sort_by("__i")
    return replace(rows, S.DOC_ROWS, pc.cast(joined["w_sum"], pa.int64()))


def identity(table: pa.Table) -> pa.Table:
    """The :data:`~qcraft_ray.schema.ROW_IDENTITY` columns, nulls made comparable."""
    cols = {c: table[c] for c in S.ROW_IDENTITY}
    cols[S.CHUNK_INDEX] = pc.cast(pc.fill_null(cols[S.CHUNK_INDEX], -1), pa.int64())
    cols[S.TYPE] = pc.fill_null(cols[S.TYPE], "")
    cols[S.SAMPLE_INDEX] = pc.cast(pc.fill_null(cols[S.SAMPLE_INDEX], -1), pa.int64())
    cols[S.SOURCE_ROW] = pc.cast(cols[S.SOURCE_ROW], pa.int64())
    return pa.table(cols)


def drop_written(rows: pa.Table, written: pa.Table | None) -> pa.Table:
    """Rows whose identity is not in ``written`` (an :func:`identity` table)."""
    if written is None or not written.num_rows or not rows.num_rows:
        return rows
    keyed = identity(rows).append_column("__i", pa.array(range(rows.num_rows), pa.int64()))
    keep = keyed.join(written, list(S.ROW_IDENTITY), join_type="left anti")["__i"]
    return rows.take(pc.take(keep, pc.sort_indices(keep)))  # keep the input order


def count_units(rows: pa.Table) -> dict[str, UnitCounts]:
    """Unit bookkeeping for a table about to be written (output and rejected together)."""
    if not rows.num_rows:
        return {}
    counted = pc.fill_null(rows[S.COUNTS_DOCUMENT], False)
    t = pa.table(
        {
            "u": rows[S.UNIT],
            "a": pc.cast(counted, pa.int64()),
            "e": pc.if_else(counted, rows[S.DOC_ROWS], 0),
            "d": rows[S.UNIT_DOCS],
        }
    )
    stats = t.group_by("u").aggregate([([], "count_all"), ("e", "sum"), ("a", "sum"), ("d", "max")])
    return {
        u: UnitCounts(w, e, a, d)
        for u, w, e, a, d in zip(
            *(stats[c].to_pylist() for c in ("u", "count_all", "e_sum", "a_sum", "d_max")),
            strict=True,
        )
    }


def merge_units(parts: Iterable[dict[str, UnitCounts]]) -> dict[str, UnitCounts]:
    """Add unit bookkeeping across write tasks (and attempts)."""
    total: dict[str, UnitCounts] = {}
    for part in parts:
        for unit, counts in part.items():
            total[unit] = total[unit] + counts if unit in total else counts
    return total
