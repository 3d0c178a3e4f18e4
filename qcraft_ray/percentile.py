"""Drop outputs below a per-language score percentile, after every output is scored.

A percentile needs every score, so this runs once the pipeline has committed all rows
(``score.min_percentile``). Thresholds are computed once from the committed ``ok`` rows
and saved in ``_thresholds.json``; applying saved thresholds again changes nothing, so
the step is safe to repeat after a crash. Per write task: rows below their language's
threshold move to a new ``_rejected/`` file (reason ``low_score``, the threshold in
``error``), kept rows to a new data file, and the task's manifest is replaced in one
write; the old data files then become orphans and are removed. Unit bookkeeping does not
change (every row is still written once), only the counters.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.io import filesystems
from qcraft_ray.io.commit import (REJECTED_DIR, Manifest, exists, get_json, get_parquet,
                                  put_json, put_parquet, write_manifest)
from qcraft_ray.report import count_rows

THRESHOLDS_FILE = "_thresholds.json"


def thresholds(fs, root: str, manifests: list[Manifest], percentile: float) -> dict[str, float]:
    """Per-language thresholds: saved ones when present, else computed and saved."""
    path = filesystems.join(root, THRESHOLDS_FILE)
    if exists(fs, path):
        saved = get_json(fs, path)
        if saved["percentile"] == percentile:
            return saved["thresholds"]
    scores: dict[str, list[np.ndarray]] = {}
    for rel in (f for m in manifests for f in m.files if not f.startswith(REJECTED_DIR + "/")):
        t = get_parquet(fs, filesystems.join(root, rel))
        ok = t.filter(pc.and_(pc.equal(t[S.STATUS], S.STATUS_OK), pc.is_valid(t[S.SCORE])))
        for lang in pc.unique(ok[S.LANGUAGE]).to_pylist():
            mine = ok.filter(pc.equal(ok[S.LANGUAGE], lang))[S.SCORE].to_numpy()
            scores.setdefault(lang, []).append(mine)
    found = {lang: float(np.percentile(np.concatenate(parts), percentile))
             for lang, parts in sorted(scores.items())}
    put_json(fs, path, {"percentile": percentile, "thresholds": found})
    return found


def filter_by_percentile(fs, root: str, manifests: list[Manifest], percentile: float,
                         first_type: str | None) -> list[Manifest]:
    """Apply the thresholds to every manifest's data files; return the new manifests."""
    limits = thresholds(fs, root, manifests, percentile)
    return [_filter(fs, root, m, limits, percentile, first_type) for m in manifests]


def _filter(fs, root: str, m: Manifest, limits: dict[str, float], percentile: float,
            first_type: str | None) -> Manifest:
    files, replaced, streams = [], [], []
    for rel in m.files:
        table = get_parquet(fs, filesystems.join(root, rel))
        if rel.startswith(REJECTED_DIR + "/"):
            files.append(rel)
            streams.append(S.to_stream(table))
            continue
        limit = pa.array([limits.get(lang, -np.inf) for lang in table[S.LANGUAGE].to_pylist()])
        low = pc.fill_null(pc.and_(pc.equal(table[S.STATUS], S.STATUS_OK),
                                   pc.less(table[S.SCORE], limit)), False)
        if not pc.any(low).as_py():
            files.append(rel)
            streams.append(S.to_stream(table))
            continue
        stem = rel.rsplit(".", 1)[0]
        kept, moved = table.filter(pc.invert(low)), S.to_stream(table.filter(low))
        moved = moved.set_column(moved.schema.get_field_index(S.STATUS), S.STATUS,
                                 pa.array([S.STATUS_REJECTED] * moved.num_rows))
        moved = moved.set_column(moved.schema.get_field_index(S.REASON), S.REASON,
                                 pa.array([S.REASON_LOW_SCORE] * moved.num_rows))
        moved = moved.set_column(moved.schema.get_field_index(S.ERROR), S.ERROR, pa.array(
            [f"below the {percentile:g}th percentile of {lang} scores ({limits[lang]:.4f})"
             for lang in moved[S.LANGUAGE].to_pylist()]))
        new_data, new_rej = f"{stem}-p.parquet", f"{REJECTED_DIR}/{stem}-p.parquet"
        put_parquet(fs, filesystems.join(root, new_data), kept)
        put_parquet(fs, filesystems.join(root, new_rej), S.conform(moved, S.REJECTED_SCHEMA))
        files += [new_data, new_rej]
        replaced.append(rel)
        streams += [S.to_stream(kept), moved]
    if not replaced:
        return m
    counts = count_rows(pa.concat_tables(streams), first_type)
    for kept_as_is in ("by_replica", "prompt_tokens", "output_tokens"):  # not in the files
        counts[kept_as_is] = m.counts.get(kept_as_is, counts[kept_as_is])
    new = Manifest(m.attempt, m.task, files, m.units, counts)
    write_manifest(fs, root, new)  # one write switches the task to its new files
    for rel in replaced:
        fs.delete_file(filesystems.join(root, rel))
    return new
