"""The package's layering, read from its imports (every import, those inside functions
included): no loop between files, and arrows that point down."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "qcraft_ray"

# Top to bottom. A module may import modules of its own layer and of the layers below.
LAYERS: list[tuple[str, ...]] = [
    # entry points, and the terminal around a run
    ("qcraft_ray.cli", "qcraft_ray.devtools", "qcraft_ray.config_reference", "qcraft_ray.terminal"),
    # the run's acts, and the check of what a run would need
    ("qcraft_ray.run", "qcraft_ray.finalise", "qcraft_ray.estimate", "qcraft_ray.doctor"),
    ("qcraft_ray.pipeline",),  # wiring
    ("qcraft_ray.passes",),  # passes over committed output
    ("qcraft_ray.report",),  # the run report
    ("qcraft_ray.io",),  # input discovery and reading, the output sink
    ("qcraft_ray.stages", "qcraft_ray.progress"),  # steps, and where they report
    ("qcraft_ray.ledger",),  # bookkeeping
    ("qcraft_ray.lake",),  # Iceberg catalogs and tables
    # storage, models, compile caches
    ("qcraft_ray.store", "qcraft_ray.model_cache", "qcraft_ray.compile_cache",
     "qcraft_ray.tokenization"),
    (  # shared vocabulary: config, columns, errors, telemetry types
        "qcraft_ray.config",
        "qcraft_ray.config_loader",
        "qcraft_ray.schema",
        "qcraft_ray.mode",
        "qcraft_ray.rows",
        "qcraft_ray.errors",
        "qcraft_ray.telemetry",
        "qcraft_ray.timeline",
        "qcraft_ray.placement",
        "qcraft_ray.compat",
        "qcraft_ray.digests",
        "qcraft_ray.languages",
        "qcraft_ray.output_types",
    ),
]

# The one import that points up: the ledger fingerprints a run by its input plan, a
# plain data type that lives beside the reader.
UPWARD_ALLOWED = {("qcraft_ray.ledger", "qcraft_ray.io.plan")}


def modules() -> dict[str, str]:
    """Dotted module name -> its file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = str(path.relative_to(REPO))
    return out


def imports(path: str) -> set[str]:
    """What ``path`` imports (``from a import b`` gives ``a.b`` when that is a module)."""
    known = modules()
    found = set()
    for node in ast.walk(ast.parse((REPO / path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (its own package's ``__init__`` aside)."""
    known = modules()
    out = {}
    for name, path in known.items():
        deps = {m for m in imports(path) if m in known and m != name}
        out[name] = {d for d in deps if not name.startswith(d + ".")}
    return out


def layer_of(module: str) -> int:
    best = max(
        ((len(p), i) for i, layer in enumerate(LAYERS) for p in layer
         if module == p or module.startswith(p + ".")),
        default=None,
    )
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1]


def test_every_module_has_a_layer():
    for name in modules():
        if name != "qcraft_ray":
            layer_of(name)


def test_no_import_loop_between_files():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert not loops


def upward_imports() -> set[tuple[str, str]]:
    """(importing package, imported module) for each import from a lower layer up."""
    found = set()
    for name, deps in graph().items():
        if name == "qcraft_ray":
            continue
        for d in deps:
            if d != "qcraft_ray" and layer_of(d) < layer_of(name):
                found.add((".".join(name.split(".")[:2]), d))
    return found


def test_imports_point_down_but_one():
    assert upward_imports() == UPWARD_ALLOWED
    assert len(UPWARD_ALLOWED) <= 1


def test_the_layer_check_sees_an_upward_import():
    """The check is not vacuous: the ledger's run state is below the pipeline."""
    assert layer_of("qcraft_ray.ledger.state") > layer_of("qcraft_ray.pipeline")
    assert layer_of("qcraft_ray.io.discover") < layer_of("qcraft_ray.ledger.state")
    assert layer_of("qcraft_ray.telemetry") == len(LAYERS) - 1


@pytest.mark.parametrize("layer,forbidden", [
    ("store", ("qcraft_ray.ledger", "qcraft_ray.stages", "qcraft_ray.report",
               "qcraft_ray.io", "qcraft_ray.pipeline", "qcraft_ray.lake")),
    ("ledger", ("qcraft_ray.stages", "qcraft_ray.pipeline", "qcraft_ray.cli",
                "qcraft_ray.report", "qcraft_ray.passes", "qcraft_ray.finalise",
                "qcraft_ray.io.discover", "qcraft_ray.io.read", "qcraft_ray.io.write")),
    ("stages", ("qcraft_ray.io", "qcraft_ray.store", "qcraft_ray.pipeline", "ray.data")),
    ("report", ("qcraft_ray.stages", "qcraft_ray.passes", "qcraft_ray.pipeline")),
])
def test_layer_does_not_reach_up(layer, forbidden):
    """Rules of long standing, by name: pure stage cores (no Ray Data), a store and a
    ledger that know nothing of what runs above them."""
    bad = {}
    for name, path in modules().items():
        if name.startswith(f"qcraft_ray.{layer}"):
            found = sorted(i for i in imports(path) if i.startswith(forbidden))
            if found:
                bad[path] = found
    assert not bad


def test_only_the_store_touches_storage_for_output():
    """pyarrow.fs is used by the store and by what reads inputs: discovery, and the
    model cache (models on object storage)."""
    allowed = {"qcraft_ray/io/discover.py", "qcraft_ray/model_cache.py"}
    users = {path for name, path in modules().items()
             if "pyarrow.fs" in imports(path) and not name.startswith("qcraft_ray.store")}
    assert users <= allowed, users - allowed


def test_no_module_is_told_the_first_type():
    offenders = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*.py")
                 if "first_type" in p.read_text(encoding="utf-8")]
    assert not offenders
