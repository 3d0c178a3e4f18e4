"""Drop outputs below a per-language score percentile, after every output is scored.

A percentile needs every score, so this runs once the pipeline has committed all rows
(``score.min_percentile``). Thresholds are computed once from the committed ``ok`` rows
and saved in ``_thresholds.json``; applying saved thresholds again changes nothing, so
the step is safe to repeat after a crash. Per manifest: rows below their language's
threshold move to a new ``_rejected/`` file (reason ``low_score``, the threshold in
``error``), kept rows to a new data file, and the manifest is switched in one write
(:func:`~qcraft_ray.ledger.manifests.replace_files`). Unit bookkeeping does not change
(every row is still written once), only the counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.ledger.counts import count_rows
from qcraft_ray.ledger.manifests import Manifest, replace_files, revised_name
from qcraft_ray.rows import reject
from qcraft_ray.store import THRESHOLDS_FILE, OutputFolder
from qcraft_ray.store.layout import Layout


def thresholds(folder: OutputFolder, data_files: list[str], percentile: float) -> dict[str, float]:
    """Per-language thresholds: saved ones when present, else computed and saved."""
    if folder.exists(THRESHOLDS_FILE):
        saved = folder.read_json(THRESHOLDS_FILE)
        if saved["percentile"] == percentile:
            return dict(saved["thresholds"])
    scores: dict[str, list[np.ndarray]] = {}
    for rel in data_files:
        t = folder.read_parquet(rel, columns=[S.STATUS, S.SCORE, S.LANGUAGE])
        ok = t.filter(pc.and_(pc.equal(t[S.STATUS], S.STATUS_OK), pc.is_valid(t[S.SCORE])))
        for lang in pc.unique(ok[S.LANGUAGE]).to_pylist():
            mine = ok.filter(pc.equal(ok[S.LANGUAGE], lang))[S.SCORE].to_numpy()
            scores.setdefault(lang, []).append(mine)
    found = {
        lang: float(np.percentile(np.concatenate(parts), percentile))
        for lang, parts in sorted(scores.items())
    }
    folder.write_json(THRESHOLDS_FILE, {"percentile": percentile, "thresholds": found})
    return found


def filter_by_percentile(
    folder: OutputFolder,
    manifests: Iterable[Manifest],
    percentile: float,
    layout: Layout | None = None,
    data_files: list[str] | None = None,
) -> Iterator[Manifest]:
    """Apply the thresholds to every manifest's data files; yield the new manifests, one
    at a time (``manifests`` may be a stream when ``data_files``, every data file they
    hold, is given). ``layout`` places the rejected files (partitioned by reason or not)."""
    if data_files is None:
        manifests = list(manifests)
        data_files = [f for m in manifests for f in m.data_files]
    limits = thresholds(folder, data_files, percentile)
    for m in manifests:
        yield _filter(folder, m, limits, percentile, layout or Layout())


def _filter(
    folder: OutputFolder, m: Manifest, limits: dict[str, float], percentile: float, layout: Layout
) -> Manifest:
    new_files: dict[str, pa.Table] = {}
    replaced, before, after = [], [], []
    for rel in m.data_files:
        table = folder.read_parquet(rel)
        limit = pa.array([limits.get(lang, -np.inf) for lang in table[S.LANGUAGE].to_pylist()])
        low = pc.fill_null(
            pc.and_(pc.equal(table[S.STATUS], S.STATUS_OK), pc.less(table[S.SCORE], limit)), False
        )
        if not pc.any(low).as_py():
            continue
        moved = S.to_stream(table.filter(low))
        reasons = pa.array(
            [
                f"below the {percentile:g}th percentile of {lang} scores ({limits[lang]:.4f})"
                for lang in moved[S.LANGUAGE].to_pylist()
            ],
            pa.string(),
        )
        rejected = reject(moved, pa.array([True] * moved.num_rows), S.REASON_LOW_SCORE, reasons)
        new_name = revised_name(rel, m.revision + 1)
        new_files[new_name] = table.filter(pc.invert(low))
        new_files[layout.rejected_file(new_name, S.REASON_LOW_SCORE)] = S.conform(
            rejected, S.REJECTED_SCHEMA
        )
        replaced.append(rel)
        before.append(moved)
        after.append(rejected)
    if not replaced:
        return m
    counts = m.counts.minus(count_rows(pa.concat_tables(before))).plus(
        count_rows(pa.concat_tables(after))
    )
    # the engine generated these rows whatever happens to them later
    counts.prompt_tokens, counts.output_tokens = m.counts.prompt_tokens, m.counts.output_tokens
    return replace_files(folder, m, new_files, replaced, counts)
