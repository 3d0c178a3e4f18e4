"""The read plan: input files, the fragments read tasks cover, and a job's shard of them.

A fragment is a run of consecutive row groups of one file (about ``rows_per_task``
rows). ``input.shard = i/n`` keeps the i-th of n contiguous runs of fragments, cut so
each run holds about 1/n of the rows: the same cut for every job given the same input,
so n jobs cover it exactly once without talking to each other. Pure data and functions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputFile:
    """One Parquet file and what the reader needs to know about it."""

    path: str  # path inside its filesystem
    display: str  # the name users see (URI for object stores)
    num_rows: int
    row_groups: tuple[int, ...]  # rows per row group
    columns: tuple[str, ...]  # source columns to read from this file
    path_code: str | None  # FineWeb2 subset code found in the path, if any
    text_bytes: int  # uncompressed size of the text column (for size estimates)


@dataclass(frozen=True)
class Fragment:
    """Consecutive row groups of one file, read by one task."""

    file: InputFile
    row_groups: tuple[int, ...]
    first_row: int  # index in the file of the fragment's first row
    num_rows: int

    @property
    def key(self) -> tuple[str, int]:
        return self.file.display, self.first_row


@dataclass(frozen=True)
class ShardShare:
    """One job's share of the input: which fragments, and how that compares to all."""

    index: int
    count: int
    fragments: frozenset[tuple[str, int]]  # Fragment.key of each fragment in the share
    rows: int
    all_rows: int
    all_fragments: int

    def describe(self) -> dict[str, int | str]:
        return {
            "shard": f"{self.index}/{self.count}",
            "documents": self.rows,
            "of_documents": self.all_rows,
            "read_units": len(self.fragments),
            "of_read_units": self.all_fragments,
        }


@dataclass(frozen=True)
class InputPlan:
    files: tuple[InputFile, ...]
    shard: ShardShare | None = None  # None: the whole input
    snapshot_id: int | None = None  # the Iceberg snapshot read, for input.iceberg

    @property
    def total_rows(self) -> int:
        """Documents this job reads (its shard's only)."""
        if self.shard is not None:
            return self.shard.rows
        return sum(f.num_rows for f in self.files)


def all_fragments(files: tuple[InputFile, ...], rows_per_task: int) -> list[Fragment]:
    """Every file cut into runs of row groups of at least ``rows_per_task`` rows."""
    fragments: list[Fragment] = []
    for f in files:
        start, groups, rows = 0, [], 0
        for i, n in enumerate(f.row_groups):
            groups.append(i)
            rows += n
            if rows >= rows_per_task:
                fragments.append(Fragment(f, tuple(groups), start, rows))
                start, groups, rows = start + rows, [], 0
        if groups and rows:
            fragments.append(Fragment(f, tuple(groups), start, rows))
    return fragments


def fragments_to_read(plan: InputPlan, rows_per_task: int) -> list[Fragment]:
    """The fragments this job reads: all of them, or its shard's."""
    fragments = all_fragments(plan.files, rows_per_task)
    if plan.shard is None:
        return fragments
    return [f for f in fragments if f.key in plan.shard.fragments]


def shard_of(fragments: list[Fragment], index: int, count: int) -> list[Fragment]:
    """The ``index``-th of ``count`` contiguous runs of ``fragments`` balanced by rows:
    a fragment goes to the shard its middle row falls in."""
    total = sum(f.num_rows for f in fragments)
    mine, before = [], 0
    for f in fragments:
        middle = before + f.num_rows / 2
        if min(int(count * middle / total), count - 1) == index:
            mine.append(f)
        before += f.num_rows
    return mine


def select_shard(plan: InputPlan, rows_per_task: int, index: int, count: int) -> InputPlan:
    """``plan`` narrowed to one shard (only the files the shard reads are kept)."""
    fragments = all_fragments(plan.files, rows_per_task)
    mine = shard_of(fragments, index, count)
    share = ShardShare(
        index=index,
        count=count,
        fragments=frozenset(f.key for f in mine),
        rows=sum(f.num_rows for f in mine),
        all_rows=sum(f.num_rows for f in fragments),
        all_fragments=len(fragments),
    )
    names = {f.file.display for f in mine}
    files = tuple(f for f in plan.files if f.display in names)
    return InputPlan(files=files, shard=share, snapshot_id=plan.snapshot_id)
