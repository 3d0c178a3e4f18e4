"""Find the input Parquet files and check them before any engine starts.

Discovery reads only Parquet footers (a few KB per file), in parallel threads. It
gives the read plan (rows and row groups per file, columns to project) and fails early,
naming the file and the field, for inputs that cannot work.
"""

from __future__ import annotations

import fnmatch
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from qcraft_ray import schema as S
from qcraft_ray.config import InputConfig, RunConfig, StorageConfig
from qcraft_ray.errors import InputError
from qcraft_ray.io.plan import InputFile, InputPlan, select_shard
from qcraft_ray.languages import code_from_path
from qcraft_ray.ledger.state import pinned_snapshot
from qcraft_ray.store import filesystems

__all__ = ["discover", "plan_input"]

# Source columns read when a file has them, and the column each one feeds.
# FineWeb-Edu's edu classifier `score` is its quality score.
OPTIONAL_SOURCE_COLUMNS = (
    "language",
    "language_script",
    S.URL,
    S.DUMP,
    S.DATE,
    S.QUALITY_SCORE,
    "score",
)

_GLOB_CHARS = set("*?[")


def _is_data_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".parquet") and not base.startswith(("_", "."))


def _expand(path: str, storage: StorageConfig) -> list[tuple[pafs.FileSystem, str, str]]:
    """Files matching ``path``: ``(filesystem, inner path, display name)``."""
    fs, inner = filesystems.resolve(path, storage)
    found = _match(fs, inner)
    return [(fs, p, filesystems.display(path, p)) for p in found]


def _match(fs: pafs.FileSystem, inner: str) -> list[str]:
    if any(c in inner for c in _GLOB_CHARS):
        cut = min(inner.index(c) for c in _GLOB_CHARS if c in inner)
        base = inner[:cut].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return [
            i.path
            for i in infos
            if i.type == pafs.FileType.File and fnmatch.fnmatchcase(i.path, inner)
        ]
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.File:
        return [inner]
    if info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
        return [i.path for i in infos if i.type == pafs.FileType.File and _is_data_file(i.path)]
    return []


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _inspect(fs: pafs.FileSystem, path: str, name: str, cfg: InputConfig) -> InputFile:
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
            arrow_schema = meta.schema.to_arrow_schema()
    except Exception as e:  # pyarrow raises several types for unreadable files
        raise InputError(f"{name}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    fields = {f.name: f.type for f in arrow_schema}
    if cfg.text_column not in fields:
        raise InputError(
            f"{name}: text column {cfg.text_column!r} not found; columns: {sorted(fields)}"
        )
    if not _is_string(fields[cfg.text_column]):
        raise InputError(
            f"{name}: field {cfg.text_column!r} has type {fields[cfg.text_column]}, "
            "expected a string"
        )
    for col in ("language", "language_script", S.DUMP, S.URL):
        if col in fields and not _is_string(fields[col]) and not pa.types.is_null(fields[col]):
            raise InputError(f"{name}: field {col!r} has type {fields[col]}, expected a string")
    for col in (S.QUALITY_SCORE, "score"):
        t = fields.get(col)
        if t is not None and not (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
        ):
            raise InputError(f"{name}: field {col!r} has type {t}, expected a number")
    t = fields.get(cfg.id_column)
    if t is not None and not (_is_string(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
        raise InputError(
            f"{name}: id field {cfg.id_column!r} has type {t}, expected a string or an integer"
        )
    wanted = [cfg.text_column, cfg.id_column, *OPTIONAL_SOURCE_COLUMNS]
    columns = tuple(dict.fromkeys(c for c in wanted if c in fields))
    groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    text_idx = arrow_schema.get_field_index(cfg.text_column)
    text_bytes = 0
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        for j in range(rg.num_columns):
            if rg.column(j).path_in_schema == cfg.text_column or j == text_idx:
                text_bytes += rg.column(j).total_uncompressed_size
                break
    return InputFile(
        path=path,
        display=name,
        num_rows=meta.num_rows,
        row_groups=groups,
        columns=columns,
        path_code=code_from_path(path),
        text_bytes=text_bytes,
    )


def plan_input(cfg: RunConfig) -> InputPlan:
    """The run's input plan (:func:`discover`), reading the Iceberg snapshot an earlier
    attempt of the run in ``output.path`` pinned, so a resume reads the same rows."""
    return discover(cfg.input, cfg.storage, pinned_snapshot=pinned_snapshot(cfg))


def discover(
    cfg: InputConfig,
    storage: StorageConfig,
    max_workers: int = 16,
    pinned_snapshot: int | None = None,
) -> InputPlan:
    """Expand ``cfg.paths`` (or the files of ``cfg.iceberg``'s snapshot: the configured
    one, else ``pinned_snapshot``, else the current one), inspect every file's footer and
    keep this job's shard. Raises :class:`InputError`."""
    found: list[tuple[pafs.FileSystem, str, str]] = []
    snapshot_id = None
    if cfg.iceberg is not None:
        from qcraft_ray.lake.source import snapshot_files

        snapshot_id, uris = snapshot_files(cfg.iceberg, storage, pinned_snapshot)
        for uri in uris:
            fs, inner = filesystems.resolve(uri, storage)
            found.append((fs, inner, filesystems.display(uri, inner)))
    for path in cfg.paths:
        matches = _expand(path, storage)
        if not matches:
            raise InputError(f"input path matches no Parquet file: {path}")
        found.extend(sorted(matches, key=lambda m: m[1]))
    unique = list({name: (fs, p, name) for fs, p, name in found}.values())
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        files = list(pool.map(lambda m: _inspect(m[0], m[1], m[2], cfg), unique))
    plan = InputPlan(files=tuple(files), snapshot_id=snapshot_id)
    source = cfg.paths or [cfg.iceberg.table if cfg.iceberg else ""]
    if plan.total_rows == 0:
        raise InputError(
            f"input has no rows: {len(files)} Parquet file(s) matched {source}, all empty"
        )
    if cfg.shard_of is not None:
        index, count = cfg.shard_of
        plan = select_shard(plan, cfg.rows_per_task, index, count)
        if plan.total_rows == 0:
            assert plan.shard is not None
            raise InputError(
                f"shard {cfg.shard} holds no rows: the input has {plan.shard.all_fragments} "
                f"read units of ~{cfg.rows_per_task} rows; use fewer shards or a smaller "
                "input.rows_per_task"
            )
    return plan
