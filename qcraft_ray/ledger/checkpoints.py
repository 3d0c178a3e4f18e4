"""Checkpoints of the committed manifests, as table formats compact their logs.

A checkpoint, ``_checkpoints/<manifests covered>-<id>.ckpt`` (gzipped JSON lines; a
name storage layers do not decompress on their own), is a
:class:`~qcraft_ray.ledger.committed.Committed`: what a set of accepted manifests adds
up to. Its first line is the format, the second the counts, then one line per part
(names, files, units): ``qcraft report`` decompresses and parses only the counts and
names, the bulk of a large checkpoint being the units.

Reading the output's bookkeeping (:func:`fold`) starts from the newest checkpoint that
reads back and folds in only the manifests it does not cover, so a resume, the finalise
and ``qcraft report`` read one object and the few manifests committed since, instead of
every manifest.

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
- The checkpoint the finalise (or ``qcraft score``) writes last is *whole*: it is the
  finished output's bookkeeping. A reader of a finished output (``qcraft report``,
  ``qcraft inspect``) takes it as is, without listing the manifests
  (``fold(finished=True)``); a pass invalidates it before it switches manifests.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator

from qcraft_ray.ledger.committed import PARTS, Committed, Part
from qcraft_ray.ledger.manifests import Manifest, iter_manifests, manifest_names
from qcraft_ray.store import CHECKPOINT_DIR, OutputFolder

log = logging.getLogger(__name__)

FORMAT = 4  # 4: staged Iceberg manifests (3: without; 2: units grouped by source file)
READABLE = {FORMAT: PARTS, 3: tuple(p for p in PARTS if p != "lake")}  # format: its parts


def _covered(rel: str) -> int:
    return int(rel.rsplit("/", 1)[-1].split("-", 1)[0])


def checkpoint_names(folder: OutputFolder) -> list[str]:
    """Checkpoints in the folder, newest (most manifests covered) first."""
    found = folder.list_files(CHECKPOINT_DIR, ".ckpt")
    return sorted(found, key=lambda rel: (_covered(rel), rel), reverse=True)


def write_checkpoint(folder: OutputFolder, committed: Committed, whole: bool = False) -> str:
    """Publish ``committed`` as a checkpoint, then remove the others but the newest one
    that covers fewer manifests (one that claims to cover as many or more is redundant,
    torn or foreign: the writer's checkpoints only grow). ``whole``: ``committed`` is
    the finished output's bookkeeping (the finalise's, a pass's last)."""
    body = committed.to_json()
    head = {"format": FORMAT, "whole": whole}
    lines = [json.dumps(head)] + [json.dumps(body[part]) for part in PARTS]
    covered = len(committed.names)
    rel = f"{CHECKPOINT_DIR}/{covered:010d}-{uuid.uuid4().hex[:8]}.ckpt"
    data = gzip.compress("\n".join(lines).encode() + b"\n", compresslevel=5)
    folder.write_bytes(rel, data)
    others = [r for r in checkpoint_names(folder) if r != rel]
    previous = next((r for r in others if _covered(r) < covered), None)
    for old in others:
        if old != previous:
            folder.delete(old)
    return rel


def _parse(raw: bytes, upto: Part) -> Committed:
    """A checkpoint's parts up to ``upto``; a torn file raises (gzip's end check when
    read to the end; a short read of a part line's JSON otherwise)."""
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        head = json.loads(f.readline() or b"null")
        if not isinstance(head, dict) or head.get("format") not in READABLE:
            found = head.get("format") if isinstance(head, dict) else head
            raise ValueError(f"format {found!r}")
        parts = READABLE[head["format"]]
        wanted = parts[: parts.index(upto) + 1] if upto != "counts" else parts[:2]
        data = {}
        for part in wanted:
            line = f.readline()
            if not line.endswith(b"\n"):
                raise EOFError(f"the checkpoint ends in its {part}")
            data[part] = json.loads(line)
        if wanted == parts:
            f.read()  # to the end: gzip checks its length and CRC there
    committed = Committed.from_json(data, upto)
    committed.whole = head.get("whole") is True
    return committed


def _readable(folder: OutputFolder, upto: Part) -> Iterator[tuple[str, Committed]]:
    """The checkpoints that read back (up to ``upto``), newest first; an unreadable one
    is logged and passed over."""
    for rel in checkpoint_names(folder):
        try:
            yield rel, _parse(folder.read_bytes(rel), upto)
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            log.warning("checkpoint %s is unreadable (%s); using the one before", rel, e)


def _newest(folder: OutputFolder, upto: Part) -> Committed | None:
    """The newest checkpoint that reads back, if it is whole."""
    _, committed = next(_readable(folder, upto), (None, None))
    return committed if committed is not None and committed.whole else None


def read_checkpoint(
    folder: OutputFolder, present: set[str], upto: Part = "units"
) -> Committed | None:
    """The newest checkpoint that reads back (up to ``upto``) and names only manifests
    in ``present``; None when there is none."""
    for rel, committed in _readable(folder, upto):
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
    upto: Part = "units",
    finished: bool = False,
) -> Committed:
    """What the folder's accepted manifests add up to: the newest usable checkpoint (or
    ``start``, what the caller already holds, folded into), and every manifest it does
    not cover that ``accept`` takes (all, without it); the others go to ``rejected``.
    ``names``: the manifests to consider (default: all listed). ``upto``: what is read
    of the checkpoint (the counts and names only: ``qcraft report``). ``finished``: the
    caller reads a finished output; a whole checkpoint is then all there is to read."""
    if finished and names is None and start is None:
        whole = _newest(folder, upto)
        if whole is not None:
            whole.from_checkpoint = len(whole.names)
            return whole
    names = manifest_names(folder) if names is None else names
    if start is None:
        committed = read_checkpoint(folder, set(names), upto) or Committed(read_upto=upto)
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
