"""Checkpoints of the committed manifests, as table formats compact their logs.

A checkpoint, ``_checkpoints/<manifests covered>-<id>.ckpt`` (gzipped JSON; a name
storage layers do not decompress on their own), is a
:class:`~qcraft_ray.ledger.committed.Committed`: what a set of accepted manifests adds
up to. Reading the output's bookkeeping (:func:`fold`) starts from the newest checkpoint
that reads back whole and folds in only the manifests it does not cover, so a resume, the
finalise and ``qcraft report`` read one object and the few manifests committed since,
instead of every manifest.

The rules that keep it exact:

- A checkpoint is published in one step (the output folder's atomic write) after every
  manifest it covers was committed; a writer killed mid-write leaves none. One that does
  not read back (a torn or foreign file) is skipped for the one before it.
- It covers manifests, never replaces them: every manifest stays in ``_manifests/``. A
  checkpoint naming a manifest that is no longer there is stale, and not used.
- A pass that switches manifests (the percentile filter, ``qcraft score``) removes every
  checkpoint before its first switch (:func:`invalidate`).
- It covers only what the run accepts (the writer folds with the run's own rule), so a
  late commit of a killed attempt is never in it.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Callable

from qcraft_ray.ledger.committed import Committed
from qcraft_ray.ledger.manifests import Manifest, iter_manifests, manifest_names
from qcraft_ray.store import CHECKPOINT_DIR, OutputFolder

log = logging.getLogger(__name__)

FORMAT = 1


def _covered(rel: str) -> int:
    return int(rel.rsplit("/", 1)[-1].split("-", 1)[0])


def checkpoint_names(folder: OutputFolder) -> list[str]:
    """Checkpoints in the folder, newest (most manifests covered) first."""
    found = folder.list_files(CHECKPOINT_DIR, ".ckpt")
    return sorted(found, key=lambda rel: (_covered(rel), rel), reverse=True)


def write_checkpoint(folder: OutputFolder, committed: Committed) -> str:
    """Publish ``committed`` as a checkpoint, then remove the others but the newest one
    that covers fewer manifests (one that claims to cover as many or more is redundant,
    torn or foreign: the writer's checkpoints only grow)."""
    body = {"format": FORMAT, **committed.to_json()}
    covered = len(committed.names)
    rel = f"{CHECKPOINT_DIR}/{covered:010d}-{uuid.uuid4().hex[:8]}.ckpt"
    folder.write_bytes(rel, gzip.compress(json.dumps(body).encode(), compresslevel=5))
    others = [r for r in checkpoint_names(folder) if r != rel]
    previous = next((r for r in others if _covered(r) < covered), None)
    for old in others:
        if old != previous:
            folder.delete(old)
    return rel


def read_checkpoint(folder: OutputFolder, present: set[str]) -> Committed | None:
    """The newest checkpoint that reads back whole and names only manifests in
    ``present``; None when there is none."""
    for rel in checkpoint_names(folder):
        try:
            data = json.loads(gzip.decompress(folder.read_bytes(rel)))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            committed = Committed.from_json(data)
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            log.warning("checkpoint %s is unreadable (%s); using the one before", rel, e)
            continue
        missing = committed.names - present
        if missing:
            log.warning(
                "checkpoint %s names %d manifests no longer there (first: %s); not used",
                rel,
                len(missing),
                min(missing),
            )
            continue
        return committed
    return None


def fold(
    folder: OutputFolder,
    accept: Callable[[Manifest], bool] | None = None,
    rejected: Callable[[Manifest], None] | None = None,
    names: list[str] | None = None,
    start: Committed | None = None,
) -> Committed:
    """What the folder's accepted manifests add up to: the newest usable checkpoint (or
    ``start``, what the caller already holds, folded into), and every manifest it does
    not cover that ``accept`` takes (all, without it); the others go to ``rejected``.
    ``names``: the manifests to consider (default: all listed)."""
    names = manifest_names(folder) if names is None else names
    if start is None:
        committed = read_checkpoint(folder, set(names)) or Committed()
        committed.from_checkpoint = len(committed.names)
    else:
        committed = start
    rest = [n for n in names if n not in committed.names]
    for m in iter_manifests(folder, rest):
        if accept is None or accept(m):
            committed.add(m)
        elif rejected is not None:
            rejected(m)
    return committed


def invalidate(folder: OutputFolder) -> None:
    """Remove every checkpoint (before a pass switches manifests)."""
    for rel in checkpoint_names(folder):
        folder.delete(rel)
