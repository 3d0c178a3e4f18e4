"""The package's layering, read from its imports: what each layer may depend on."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "qcraft_ray"


def imports(layer: str) -> dict[str, set[str]]:
    """Module path -> the modules it imports, for every module under ``layer``."""
    out = {}
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        out[str(path.relative_to(REPO))] = found
    return out


@pytest.mark.parametrize("layer,forbidden", [
    ("io", ("qcraft_ray.stages", "qcraft_ray.pipeline", "qcraft_ray.passes")),
    ("store", ("qcraft_ray.ledger", "qcraft_ray.stages", "qcraft_ray.report",
               "qcraft_ray.io.read", "qcraft_ray.io.write", "qcraft_ray.pipeline")),
    ("ledger", ("qcraft_ray.stages", "qcraft_ray.pipeline", "qcraft_ray.cli")),
    ("stages", ("qcraft_ray.io", "qcraft_ray.store", "qcraft_ray.pipeline", "ray.data")),
])
def test_layer_does_not_reach_up(layer, forbidden):
    bad = {m: sorted(i for i in found if i.startswith(forbidden))
           for m, found in imports(layer).items()}
    assert not {m: b for m, b in bad.items() if b}


def test_only_the_store_touches_storage_for_output():
    """pyarrow.fs is used by the store and by what reads inputs: discovery, the reader, and
    the model cache (models on object storage)."""
    allowed = {"qcraft_ray/io/discover.py", "qcraft_ray/io/filesystems.py",
               "qcraft_ray/model_cache.py"}
    users = {m for layer in ("",) for m, found in imports(layer).items()
             if "pyarrow.fs" in found and not m.startswith("qcraft_ray/store/")}
    assert users <= allowed, users - allowed


def test_no_module_is_told_the_first_type():
    offenders = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
                 if "first_type" in p.read_text(encoding="utf-8")]
    assert not offenders
