"""The input, the output path, the model, object-storage credentials and Iceberg
catalogs: each reached as the run would reach it, without writing data (the output check
writes one probe object and removes it)."""

from __future__ import annotations

import functools
import os
import shutil
import time
import uuid
from pathlib import Path

from qcraft_ray.config import RunConfig
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.doctor.findings import Finding, fail, guarded, ok, warn
from qcraft_ray.errors import UserError
from qcraft_ray.io.discover import discover
from qcraft_ray.ledger.lease import holder
from qcraft_ray.model_cache import cache_root, model_files
from qcraft_ray.store import TEMP_DIR, OutputFolder, RetryPolicy, filesystems

# What a model folder needs for vLLM to load it (weights in one of these forms)
WEIGHTS = (".safetensors", ".bin", ".pt")


def input_findings(cfg: RunConfig) -> list[Finding]:
    """Every input file's footer, as the run's discovery reads it (a few KB a file)."""
    try:
        plan = discover(cfg.input, cfg.storage)
    except UserError as e:
        return [fail("input", str(e), "fix input.paths / input.* (README: Input)")]
    first = plan.files[0]
    return [
        ok(
            "input",
            f"{len(plan.files)} file(s), {plan.total_rows:,} documents; first file "
            f"{first.display} has columns {list(first.columns)}",
        )
    ]


def output_findings(cfg: RunConfig) -> list[Finding]:
    """``output.path`` writable (a probe object written, read and removed) and not held
    by another run's live lease."""
    folder = OutputFolder.for_run(cfg.output, cfg.storage).with_retry(RetryPolicy(1, 1.0))
    shown = cfg.output.path
    out: list[Finding] = []
    kind = folder.root_kind()
    if kind == "file":
        return [fail("output", f"output.path {shown} is a file", "choose a folder")]
    current = holder(folder) if kind == "folder" else None
    if current is not None and current.live(time.time()):
        out.append(
            fail(
                "lease",
                f"output.path {shown} is in use by {current.describe()}",
                "wait for that run to finish, or stop it (its lease then expires)",
            )
        )
    else:
        out.append(ok("lease", f"no live run holds {shown}"))
    before = folder.root_entries() if kind == "folder" else []
    probe = f"{TEMP_DIR}/doctor-{uuid.uuid4().hex[:8]}"
    try:
        folder.write_bytes(probe, b"qcraft doctor probe")
        readable = folder.read_bytes(probe) == b"qcraft doctor probe"
        folder.delete(probe)
        # leave nothing behind: the folder, or the temp folder, the probe made
        if kind == "missing":
            folder.remove()
        elif TEMP_DIR not in before and current is None:
            folder.delete_dir(TEMP_DIR)
    except Exception as e:  # any storage failure is the finding
        return [
            fail(
                "output",
                f"cannot write to {shown}: {type(e).__name__}: {e}",
                "fix output.path or its permissions / credentials",
            ),
            *out,
        ]
    verdict = ok if readable else warn
    return [verdict("output", f"{shown} is writable (probe written, read back, removed)"), *out]


def _model_files(name: str, cfg: RunConfig) -> dict[str, int]:
    return model_files(name.removeprefix("file://"), cfg.storage)


def model_findings(cfg: RunConfig) -> list[Finding]:
    """The model's files where the replicas will look for them, and room to stage them."""
    name = cfg.model.name
    if cfg.generation.engine.backend != "vllm":
        return [ok("model", f"engine backend {cfg.generation.engine.backend}: no weights")]
    local = not filesystems.is_uri(name) or name.startswith("file://")
    if local and not Path(name.removeprefix("file://")).expanduser().exists():
        if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
            return [_hub_finding(name)]
        return [fail("model", f"model.name {name}: no such folder", "fix model.name")]
    files = _model_files(name, cfg)
    if "config.json" not in files:
        return [
            fail(
                "model",
                f"model.name {name}: no config.json there ({len(files)} files)",
                "point model.name at a Hugging Face model folder",
            )
        ]
    weights = sum(s for f, s in files.items() if f.endswith(WEIGHTS))
    if not weights:
        return [fail("model", f"model.name {name}: no weights (*.safetensors) there")]
    out = [ok("model", f"{name}: config.json and {weights / 1e9:.2f} GB of weights")]
    if not local:  # each node stages the model to its disk first
        root = cache_root(cfg.model)
        probe = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(probe).free
        total = sum(files.values())
        verdict = ok if free > 1.2 * total else fail
        out.append(
            verdict(
                "model-disk",
                f"{free / 1e9:.1f} GB free at {root} for "
                f"{total / 1e9:.2f} GB to stage (on this node)",
                "free disk or set model.cache_dir",
            )
        )
    return out


def _hub_finding(name: str) -> Finding:
    """A Hugging Face hub id: in the local hub cache when offline, else asked of the hub."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        return ok("model", f"{name}: in the local Hugging Face cache")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return fail(
            "model",
            f"{name}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            "download it first, or point model.name at a folder",
        )
    from huggingface_hub import HfApi

    HfApi().model_info(name, timeout=10)
    return ok("model", f"{name}: found on the Hugging Face hub (each node downloads it)")


def _uses_s3(cfg: RunConfig) -> bool:
    paths = [*cfg.input.paths, cfg.output.path, cfg.model.name, cfg.model.tokenizer or ""]
    return any(p.startswith(("s3://", "s3a://")) for p in paths)


def credential_findings(cfg: RunConfig) -> list[Finding]:
    """Where S3 credentials would come from (their values are never read out)."""
    if not _uses_s3(cfg):
        return []
    if cfg.storage.anonymous:
        return [ok("credentials", "storage.anonymous: no credentials used")]
    env = os.environ
    for source, keys in (
        ("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", ("AWS_WEB_IDENTITY_TOKEN_FILE",)),
        ("AWS_PROFILE", ("AWS_PROFILE",)),
    ):
        if all(env.get(k) for k in keys):
            return [ok("credentials", f"S3 credentials from {source} (values not shown)")]
    if Path("~/.aws/credentials").expanduser().exists():
        return [ok("credentials", "S3 credentials from ~/.aws/credentials (values not shown)")]
    return [
        warn(
            "credentials",
            "no S3 credentials in the environment or ~/.aws",
            "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, unless the nodes have an instance role",
        )
    ]


def iceberg_findings(cfg: RunConfig) -> list[Finding]:
    out: list[Finding] = []
    for key, table in (
        ("input.iceberg", cfg.input.iceberg),
        ("output.iceberg", cfg.output.iceberg),
    ):
        if table is not None:
            out += guarded("iceberg", functools.partial(_catalog, key, table, cfg))
    return out


def _catalog(key: str, table: IcebergTable, cfg: RunConfig) -> list[Finding]:
    from qcraft_ray.lake.catalog import load

    catalog = load(table, cfg.storage)
    namespaces = catalog.list_namespaces()
    return [
        ok(
            "iceberg",
            f"{key}: catalog {table.catalog_name!r} reachable "
            f"({len(namespaces)} namespace(s)); table {table.table}",
        )
    ]


def compile_cache_findings(cfg: RunConfig) -> list[Finding]:
    """``generation.engine.compile_cache`` reachable, and what it holds for this machine's
    vLLM, torch and device."""
    from qcraft_ray.compile_cache import SharedCompileCache, cache_key, local_folder

    uri = cfg.generation.engine.compile_cache
    if not uri or cfg.generation.engine.backend != "vllm":
        return []
    key = cache_key(cfg.generation.device, cfg.model.name)
    shared = SharedCompileCache(uri, key, local_folder(cfg.model, key), cfg.storage)
    try:
        publishes = shared.publishes()
    except Exception as e:  # any storage failure is the finding
        return [
            fail(
                "compile-cache",
                f"cannot read generation.engine.compile_cache {uri}: {type(e).__name__}: {e}",
                "fix the folder or its credentials, or set it to null (each node compiles)",
            )
        ]
    files = sum(len(p) for p in publishes.values())
    return [ok("compile-cache", f"{uri}: {len(publishes)} publish(es), {files} files for {key}")]


def weights_bytes(cfg: RunConfig) -> int:
    """The size of the model's weight files where they can be listed from here (a local
    folder or object storage; 0 for a hub id or on error)."""
    name = cfg.model.name
    if cfg.generation.engine.backend != "vllm":
        return 0
    try:
        files = _model_files(name, cfg)
    except Exception:  # unknown size: the memory check is skipped
        return 0
    return sum(s for f, s in files.items() if f.endswith(WEIGHTS))
