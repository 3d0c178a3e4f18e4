"""A generated batch as Arrow: each pending row becomes its samples' rows, in place.

The batch is never turned into Python rows (its prompt token ids alone are hundreds of
integers a row): rows are taken by index, one per sample of a pending row and one per
other row, and only the few columns generation sets are built in Python.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from qcraft_ray import schema as S
from qcraft_ray.rows import replace
from qcraft_ray.stages.clean import clean_output, comparable
from qcraft_ray.stages.engine import Generated

SET = (S.OUTPUT, S.STATUS, S.OUTPUT_TOKENS, S.ERROR, S.SAMPLE_INDEX, S.REPLICA)


def outcomes(result: Generated | BaseException, samples: int) -> list[dict]:
    """A prompt's outcome per sample (``sample_index`` 0..n-1): cleaned output, status
    and tokens; ``duplicate`` for an ok sample whose text an earlier ok sample of the same
    prompt has (case and whitespace aside); an engine error gives every sample the
    error."""
    if isinstance(result, BaseException):
        error = f"{type(result).__name__}: {result}"
        return [{S.STATUS: S.STATUS_ERROR, S.ERROR: error}] * samples
    out, seen = [], set()
    for g in (result, *result.more):
        output, status = clean_output(g.text)
        if status == S.STATUS_OK:
            key = comparable(output)
            status = S.STATUS_DUPLICATE if key in seen else status
            seen.add(key)
        out.append({S.OUTPUT: output, S.STATUS: status, S.OUTPUT_TOKENS: g.tokens})
    return out


def generated_table(
    batch: pa.Table,
    results: dict[int, Generated | BaseException],
    samples: int,
    replica: str,
) -> pa.Table:
    """``batch`` with each row of ``results`` (row index -> result) replaced by its
    samples' rows, stamped with ``replica``; their prompt ids dropped (not needed
    downstream; keeps blocks small). The counting marks stay on sample 0."""
    old = {name: batch[name].to_pylist() for name in SET}
    take: list[int] = []
    new: dict[str, list] = {name: [] for name in SET}
    later: list[bool] = []  # a sample after the first: counts nothing
    for i in range(batch.num_rows):
        result = results.get(i)
        if result is None:
            take.append(i)
            for name in SET:
                new[name].append(old[name][i])
            later.append(False)
            continue
        for k, outcome in enumerate(outcomes(result, samples)):
            take.append(i)
            for name in (S.OUTPUT, S.STATUS, S.OUTPUT_TOKENS, S.ERROR):
                new[name].append(outcome.get(name))
            new[S.SAMPLE_INDEX].append(k)
            new[S.REPLICA].append(replica)
            later.append(k > 0)
    out = batch.take(pa.array(take, pa.int64()))
    for name in SET:
        out = replace(out, name, pa.array(new[name], out.schema.field(name).type))
    generated = pa.array([i in results for i in take], pa.bool_())
    ids = out[S.PROMPT_TOKEN_IDS]
    out = replace(
        out, S.PROMPT_TOKEN_IDS, pc.if_else(generated, pa.nulls(len(take), ids.type), ids)
    )
    if samples > 1:
        counts_nothing = pa.array(later, pa.bool_())
        for mark in (S.COUNTS_DOCUMENT, S.COUNTS_PASSAGE):
            out = replace(out, mark, pc.if_else(counts_nothing, False, out[mark]))
    return out
