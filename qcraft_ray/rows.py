"""Column-wise edits of Arrow row tables that several stages share."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S


def replace(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """``table`` with column ``name`` set to ``values``."""
    return table.set_column(table.schema.get_field_index(name), name, values)


def reject(
    table: pa.Table,
    mask: pa.Array | pa.ChunkedArray,
    reason: str,
    error: str | pa.Array | None = None,
) -> pa.Table:
    """Rows where ``mask`` is true become rejections with ``reason`` (and ``error`` when
    given); the others are left as they are. Tables without a status column (documents)
    get the reason and error only."""
    mask = pc.fill_null(mask, False)
    if S.STATUS in table.column_names:
        table = replace(table, S.STATUS, pc.if_else(mask, S.STATUS_REJECTED, table[S.STATUS]))
    table = replace(table, S.REASON, pc.if_else(mask, reason, table[S.REASON]))
    if error is not None:
        err = error if not isinstance(error, str) else pa.scalar(error, pa.string())
        table = replace(table, S.ERROR, pc.if_else(mask, err, table[S.ERROR]))
    return table
