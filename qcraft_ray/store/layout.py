"""Where rows go in the output folder: Hive-style partition folders and file sizes.

With ``output.partition_by`` set, data files go to ``language=japanese/type=query/``
and rejected files to ``_rejected/reason=too_short/``. A folder name takes a value only
from a fixed set (the model's languages, its types, known source codes, rejection
reasons), never from raw data: a value outside the set, and null, go to
``__HIVE_DEFAULT_PARTITION__``, which DuckDB, Polars, pyarrow and Spark read as null.
Partition columns stay in the files too (an Iceberg table infers a file's partition
from its column statistics), and a file never mixes two values of a partition column,
null included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.languages import LANGUAGES, SOURCE_CODE_TO_LANGUAGE
from qcraft_ray.output_types import TYPES
from qcraft_ray.store.folder import REJECTED_DIR

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def allowed_values(column: str, language_map: dict[str, str] | None = None) -> frozenset[str]:
    """The values of ``column`` that may name a partition folder."""
    if column == S.LANGUAGE:
        return frozenset(LANGUAGES)
    if column == S.TYPE:
        return frozenset(TYPES)
    if column == S.SOURCE_LANGUAGE:
        return frozenset(SOURCE_CODE_TO_LANGUAGE) | frozenset(language_map or {})
    if column == S.REASON:
        return frozenset(S.REASONS)
    raise ValueError(f"{column!r} cannot partition the output")


@dataclass(frozen=True)
class Layout:
    """How one run's rows map to folders: data by ``partition_by``, rejected by reason."""

    partition_by: tuple[str, ...] = ()
    language_map: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, partition_by: Sequence[str], language_map: dict[str, str] | None = None) -> Layout:
        return cls(tuple(partition_by), tuple(sorted((language_map or {}).items())))

    def for_schema(self, schema: pa.Schema) -> Layout:
        """The layout with only the partition columns ``schema`` has (passage rows have
        no type)."""
        return Layout(tuple(c for c in self.partition_by if c in schema.names), self.language_map)

    @property
    def rejected_by(self) -> tuple[str, ...]:
        return (S.REASON,) if self.partition_by else ()

    def data_groups(self, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """``(folder, rows)`` per partition of data rows (folder "" when unpartitioned)."""
        return self._groups(table, self.partition_by, "")

    def rejected_groups(self, table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        """``(folder, rows)`` per partition of rejected rows, under ``_rejected/``."""
        return self._groups(table, self.rejected_by, REJECTED_DIR)

    def rejected_file(self, name: str, reason: str) -> str:
        """Where a file of rejected rows, all with ``reason``, goes (``name``: a data
        file's relative name, whose file name it keeps)."""
        if not self.rejected_by:
            return f"{REJECTED_DIR}/{name}"
        return f"{REJECTED_DIR}/{self.folder({S.REASON: reason}, (S.REASON,))}/{_base(name)}"

    def data_glob(self) -> str:
        """The glob, relative to the output folder, that matches the data files only."""
        return "/".join([*(f"{c}=*" for c in self.partition_by), "*.parquet"])

    def folder(self, values: dict[str, str | None], columns: Sequence[str]) -> str:
        """``col=value/...`` for ``values``; values outside the column's set give
        ``__HIVE_DEFAULT_PARTITION__``."""
        mapping = dict(self.language_map)
        parts = []
        for c in columns:
            v = values.get(c)
            safe = v if v is not None and v in allowed_values(c, mapping) else HIVE_NULL
            parts.append(f"{c}={safe}")
        return "/".join(parts)

    def _groups(
        self, table: pa.Table, columns: tuple[str, ...], root: str
    ) -> Iterator[tuple[str, pa.Table]]:
        if not columns or table.num_rows == 0:
            if table.num_rows:
                yield root, table
            return
        keys = table.select(list(columns)).group_by(list(columns)).aggregate([])
        for key in sorted(keys.to_pylist(), key=lambda k: [str(k[c]) for c in columns]):
            mask = None
            for c in columns:
                col = table[c]
                m = (
                    pc.is_null(col)
                    if key[c] is None
                    else pc.fill_null(pc.equal(col, key[c]), False)
                )
                mask = m if mask is None else pc.and_(mask, m)
            folder = self.folder(key, columns)
            yield (f"{root}/{folder}" if root else folder), table.filter(mask)


def _base(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def sized_files(
    table: pa.Table, encode: Callable[[pa.Table], bytes], max_rows: int, max_bytes: int
) -> list[bytes]:
    """``table`` as encoded files of at most ``max_rows`` rows and, where a file can be
    split, at most ``max_bytes`` bytes (an oversized file is cut into equal row runs
    and encoded again)."""
    out: list[bytes] = []
    for start in range(0, table.num_rows, max_rows):
        part = table.slice(start, max_rows)
        data = encode(part)
        if len(data) <= max_bytes or part.num_rows == 1:
            out.append(data)
            continue
        pieces = min(part.num_rows, -(-len(data) // max_bytes) + 1)
        step = -(-part.num_rows // pieces)
        out.extend(encode(part.slice(i, step)) for i in range(0, part.num_rows, step))
    return out
