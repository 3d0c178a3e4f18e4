"""The output as a data lake on the real path: partitioned files read by DuckDB, Polars
and pyarrow; an Iceberg table (pyiceberg SQL catalog, local and SeaweedFS warehouses)
committed exactly once, appended to by other runs, read back with pyiceberg and DuckDB;
an Iceberg table as input; three shards that together equal one full run."""

from __future__ import annotations

import collections
import json
import os
import re
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import StorageConfig
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.devtools.sample_corpus import load_passages
from qcraft_ray.lake.catalog import load, load_table
from tests.conftest import REPO
from tests.integration.conftest import EAGER, run_cli
from tests.integration.services import S3_BUCKET
from tests.integration.test_job import LOCAL, s3fs_for

TYPES = ["query", "title"]
PARTS = ["language", "type"]
# a checkpoint, and an Iceberg manifest staged, after every commit the writer sees
STAGING = ("output.checkpoint_every=1", "output.checkpoint_poll_s=0.2")


def docs_table() -> pa.Table:
    """The sample passages as FineWeb2-style documents, plus one without text."""
    rows = []
    for i, p in enumerate(load_passages()):
        iso, script = p["lang"].split("_")
        rows.append({"id": f"doc-{i}", "text": p["text"], "language": iso,
                     "language_script": script})
    rows.append({"id": "doc-null", "text": None, "language": "eng", "language_script": "Latn"})
    return pa.Table.from_pylist(rows)


def settings(address: str, model: str, out: str, catalog: dict, table: str,
             *extra: str) -> list[str]:
    """`qcraft run` on the test cluster (each run starting a Ray of its own would add its
    start and stop: test_local_instance runs that)."""
    sets = [f"model.name={model}", f"output.path={out}", "output.if_exists=resume",
            f"generation.types={json.dumps(TYPES)}", f"output.partition_by={json.dumps(PARTS)}",
            "input.rows_per_task=8", "generation.batch_size=16", "output.min_rows_per_file=16",
            EAGER,
            f"output.iceberg={json.dumps({'catalog': catalog, 'table': table})}", *extra]
    return ["run", LOCAL, "--address", address, *sum((["--set", s] for s in sets), [])]


def local_catalog(root: Path) -> dict[str, str]:
    (root / "wh").mkdir(parents=True, exist_ok=True)
    return {"type": "sql", "uri": f"sqlite:///{root}/catalog.db", "warehouse": f"file://{root}/wh"}


def keyed(rows: pa.Table) -> dict[tuple, str | None]:
    return {(r[S.DOC_ID], r[S.CHUNK_INDEX], r[S.TYPE]): r[S.OUTPUT] for r in rows.to_pylist()}


@pytest.fixture(scope="module")
def full_run(ray_cluster, tiny_model, embedding_model, tmp_path_factory):
    """The whole corpus from an Iceberg table, partitioned, committed to a local table."""
    root = tmp_path_factory.mktemp("lake")
    catalog = local_catalog(root)
    src = IcebergTable(catalog=catalog, table="src.docs")
    cat = load(src, StorageConfig())
    cat.create_namespace("src")
    cat.create_table("src.docs", schema=docs_table().schema).append(docs_table())
    out = str(root / "out")
    args = settings(ray_cluster.address, tiny_model, out, catalog, "lake.queries",
                    "input.paths=[]", f"input.iceberg={json.dumps(src.model_dump())}",
                    "score.enabled=true", f"score.model={embedding_model}",
                    "score.device=cpu", "score.cpus_per_replica=0.5",
                    *STAGING)
    res = run_cli(args, ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    report = json.loads((Path(out) / "_report.json").read_text())
    return root, out, catalog, args, report


def test_partitioned_output_read_by_duckdb_polars_and_pyarrow(full_run):
    root, out, _, _, report = full_run
    assert report["status"] == "complete" and report["schema_version"] == S.SCHEMA_VERSION
    assert report["input"]["documents"] == len(docs_table())
    assert report["input"]["iceberg_snapshot_id"] is not None
    glob = report["output"]["data_glob"]
    assert glob == "language=*/type=*/*.parquet"
    rows = sum(report["counts"]["outputs"].values())
    files = sorted(Path(out).glob(glob))
    assert files and all(S.schema_version_of(pq.read_schema(f)) == S.SCHEMA_VERSION
                         for f in files)
    for f in files:  # each file holds the one partition its folder names
        t = pq.read_table(f, columns=PARTS)
        lang, typ = (p.split("=")[1] for p in f.parts[-3:-1])
        assert set(t["language"].to_pylist()) == {lang} and set(t["type"].to_pylist()) == {typ}
    assert {p.parent.name for p in Path(out, "_rejected").glob("*/*.parquet")} == \
        {f"reason={r}" for r in report["counts"]["rejected"]}
    # DuckDB: counts per language and type equal the report's; types are the schema's
    con = duckdb.connect()
    by_lt = con.sql(f"select language, type, count(*) from read_parquet('{out}/{glob}', "
                    "hive_partitioning=true) group by all").fetchall()
    expected = collections.Counter()
    for lang_type, statuses in report["counts"]["by_language_type"].items():
        expected[tuple(lang_type.split("/"))] += sum(statuses.values())
    assert {(lang, typ): n for lang, typ, n in by_lt} == dict(expected)
    described = {r[0]: r[1] for r in con.sql(
        f"describe select * from read_parquet('{out}/{glob}', hive_partitioning=true)"
    ).fetchall()}
    assert described[S.CHUNK_INDEX] == "INTEGER" and described[S.SOURCE_ROW] == "BIGINT"
    assert described[S.SCORE] == "DOUBLE" and described[S.OUTPUT] == "VARCHAR"
    assert set(described) == set(S.OUTPUT_SCHEMA.names)
    # Polars, lazily, with the same glob
    frame = pl.scan_parquet(f"{out}/{glob}", hive_partitioning=True).collect()
    assert frame.height == rows and frame.schema[S.CHUNK_INDEX] == pl.Int32
    assert dict(frame.group_by("status").len().iter_rows()) == report["counts"]["outputs"]
    # pyarrow datasets skip _-prefixed bookkeeping (_rejected, _manifests, _report.json)
    ds = pads.dataset(out, format="parquet", partitioning="hive").to_table()
    assert ds.num_rows == rows
    assert ds.schema.field(S.CHUNK_INDEX).type == pa.int32()


def readme_examples(language: str) -> list[str]:
    """The code blocks of the README's "Querying the output" section in ``language``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Querying the output", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split(f"```{language}\n")[1:]]


def test_readme_queries_run_on_the_output(full_run):
    """The README's DuckDB and Polars examples, exactly as written, on a real run."""
    root, out, _, _, report = full_run
    sql, python = readme_examples("sql"), readme_examples("python")
    assert len(sql) == 4 and len(python) == 1  # the last SQL block is Spark's
    source = str(root / "wh")  # where the input table's data files are
    con = duckdb.connect()
    per_lt, pairs, joined = [
        con.sql(q.replace("OUTPUT", out).replace("INPUT", source)).to_arrow_table()
        for q in sql[:3]]
    ok = report["counts"]["outputs"]["ok"]
    assert sum(per_lt.column("queries").to_pylist()) == ok
    scored = pads.dataset(out, format="parquet", partitioning="hive").to_table().to_pylist()
    expected = [r for r in scored if r[S.STATUS] == "ok" and r[S.TYPE] == "query"
                and r[S.SCORE] >= 0.2]
    assert 0 < pairs.num_rows == len(expected) < ok
    assert joined.num_rows == ok  # every ok output found its source row
    docs = {r["id"]: r["text"] for r in docs_table().to_pylist()}
    for r in joined.to_pylist():
        assert r["text"] == docs[r["id"]]
    # qcraft inspect: the two lowest-scoring English outputs, lowest first
    res = run_cli(["inspect", out, "--lowest", "2", "--language", "english"], dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    english = sorted(r[S.SCORE] for r in scored
                     if r[S.LANGUAGE] == "english" and r[S.STATUS] == "ok")
    shown = [float(x) for x in re.findall(r"score=(-?[\d.]+)", res.stdout)]
    assert shown == [round(x, 4) for x in english[:2]]
    scope: dict = {}
    exec(python[0].replace("OUTPUT", out), scope)  # noqa: S102 - the README's own example
    assert scope["pairs"].height == len(
        [r for r in scored if r[S.STATUS] == "ok" and r[S.SCORE] >= 0.2])


def test_iceberg_table_committed_once_and_read_back(full_run, ray_cluster):
    root, out, catalog, args, report = full_run
    cfg = IcebergTable(catalog=catalog, table="lake.queries")
    rows = sum(report["counts"]["outputs"].values())
    table = load_table(cfg, StorageConfig())
    assert report["iceberg"]["snapshot_id"] == table.current_snapshot().snapshot_id
    assert [table.schema().find_column_name(f.source_id) for f in table.spec().fields] == PARTS
    assert table.scan().to_arrow().num_rows == rows
    con = table.scan(row_filter="status == 'ok'").to_duckdb("queries")
    ok = con.execute("select count(*) from queries").fetchone()[0]
    assert ok == report["counts"]["outputs"].get("ok", 0)
    # the checkpoint writer staged manifests while the run went; the commit listed them
    # as they are and the finalise removed none it used
    staged = report["iceberg"]["staged_manifests"]
    assert staged >= 1 and 0 < report["iceberg"]["staged_files"] <= report["iceberg"]["files"]
    listed = {m.manifest_path for m in table.current_snapshot().manifests(table.io)}
    in_output = {f"file://{p}" for p in (Path(out) / "_iceberg").iterdir()}
    assert len(in_output) == staged and in_output <= listed
    # a crash between the table commit and _SUCCESS: the re-run resumes, finds its
    # commit by run id and adds nothing; meanwhile the input table moved on, and the
    # resumed run still reads the snapshot its first attempt pinned (runs after the
    # README test, whose join reads the input table's files)
    (Path(out) / "_SUCCESS").unlink()
    load_table(IcebergTable(catalog=catalog, table="src.docs"), StorageConfig()).append(
        docs_table())
    res = run_cli(args, ray_cluster.env)
    assert res.returncode == 0, res.stderr[-5000:]
    again = json.loads((Path(out) / "_report.json").read_text())
    assert again["input"]["iceberg_snapshot_id"] == report["input"]["iceberg_snapshot_id"]
    assert again["input"]["documents"] == len(docs_table()) and again["resumed"]
    assert again["iceberg"]["already_committed"] is True
    assert again["iceberg"]["snapshot_id"] == report["iceberg"]["snapshot_id"]
    table = load_table(cfg, StorageConfig())
    assert len(table.snapshots()) == 1 and table.scan().to_arrow().num_rows == rows
    assert (Path(out) / "_SUCCESS").exists()


def test_three_shards_on_s3_equal_the_full_run_and_share_one_table(
        full_run, ray_cluster, seaweed, tiny_model, tmp_path, monkeypatch):
    root, out, _, _, report = full_run
    for key, value in seaweed.env.items():  # this process reads the table back from S3
        monkeypatch.setenv(key, value)
    fs = s3fs_for(seaweed.env)
    corpus = f"{S3_BUCKET}/lake-corpus/docs.parquet"
    fs.create_dir(corpus.rsplit("/", 1)[0])
    with fs.open_output_stream(corpus) as f:
        pq.write_table(docs_table(), f, row_group_size=8)  # 10 read units
    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db",
               "warehouse": f"s3://{S3_BUCKET}/warehouse"}
    env = ray_cluster.env
    plan = run_cli(["plan", LOCAL, "--shard", "1/3", "--set", f"input.paths=[s3://{corpus}]",
                    "--set", "input.rows_per_task=8",
                    "--set", f"model.name={tiny_model}"], env)
    assert plan.returncode == 0, plan.stderr[-3000:]
    share = json.loads(plan.stdout)["plan"]["shard"]
    assert share["shard"] == "1/3" and share["of_documents"] == len(docs_table())
    assert 0 < share["documents"] < len(docs_table())
    outs, documents, staged = [], 0, 0
    # the first two shards compile their engines and share the compile caches on the
    # bucket, each on a new node (empty caches): the first compiles and publishes, the
    # second loads what it published; the third runs eager (a speed setting: the shards
    # are still one configuration and combine)
    shared = [f"generation.engine.compile_cache=s3://{S3_BUCKET}/compile-cache",
              "generation.engine.enforce_eager=false"]
    for i in range(3):
        uri = f"s3://{S3_BUCKET}/lake-shards/{i}"
        sharing = [*shared, f"model.cache_dir={tmp_path / f'node-{i}'}"] if i < 2 else []
        res = run_cli([*settings(ray_cluster.address, tiny_model, uri, catalog, "lake.queries",
                                 f"input.paths=[s3://{corpus}]", *STAGING, *sharing),
                       "--shard", f"{i}/3"], env)
        assert res.returncode == 0, res.stderr[-5000:]
        with fs.open_input_stream(uri[len("s3://"):] + "/_report.json") as f:
            shard_report = json.loads(f.read())
        assert shard_report["input"]["shard"]["shard"] == f"{i}/3"
        uses = [r["compile_cache"] for r in shard_report["engine"]["replicas"].values()]
        if i == 0:  # nothing published yet: compiled here
            assert uses and all(u["fetched_files"] == 0 and u["misses"] >= 1 for u in uses), uses
        elif i == 1:  # every graph found in what was fetched: nothing compiled again
            assert uses and all(u["fetched_files"] > 0 and u["publishes"] >= 1 for u in uses), uses
            assert all(u["hits"] >= 1 and u["misses"] == 0 for u in uses), uses
        else:  # eager, not configured: nothing shared
            assert uses and all(u is None for u in uses)
        staged += shard_report["iceberg"]["staged_manifests"]
        if i == 1:
            assert shard_report["input"]["documents"] == share["documents"]
        documents += shard_report["input"]["documents"]
        outs.append(uri)
    assert documents == len(docs_table())
    # the shards' data files, read from the bucket with Polars, equal the full run key
    # for key (greedy: the same text too)
    opts = {"aws_access_key_id": seaweed.env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": seaweed.env["AWS_SECRET_ACCESS_KEY"],
            "aws_endpoint_url": seaweed.env["AWS_ENDPOINT_URL"], "aws_region": "us-east-1",
            "aws_allow_http": "true"}
    shards = pl.concat([pl.scan_parquet(f"{u}/{report['output']['data_glob']}",
                                        hive_partitioning=True, storage_options=opts)
                        for u in outs]).collect().to_arrow()
    whole = pads.dataset(out, format="parquet", partitioning="hive").to_table()
    assert shards.num_rows == whole.num_rows and keyed(shards) == keyed(whole)
    # the three commits landed in one table on the SeaweedFS warehouse
    table = load_table(IcebergTable(catalog=catalog, table="lake.queries"), StorageConfig())
    assert len(table.snapshots()) == 3
    assert keyed(table.scan().to_arrow()) == keyed(whole)
    assert all(f.startswith(f"s3://{S3_BUCKET}/lake-shards/") for f in
               table.inspect.files().column("file_path").to_pylist())
    assert staged >= 1  # manifests staged in the bucket, beside the shards' files
    assert any(m.manifest_path.startswith(f"s3://{S3_BUCKET}/lake-shards/")
               for s in table.snapshots() for m in s.manifests(table.io))
    # one report across the shards (a glob on the bucket) has the full run's counts
    js, page = tmp_path / "shards.json", tmp_path / "shards.html"
    res = run_cli(["report", f"s3://{S3_BUCKET}/lake-shards/*", "--json", str(js),
                   "--html", str(page)], env)
    assert res.returncode == 0, res.stderr[-3000:]
    combined = json.loads(js.read_text())
    assert combined["combined_from"] == outs and combined["status"] == "complete"
    for key in ("documents", "passages", "outputs", "rejected", "by_language_type"):
        assert combined["counts"][key] == report["counts"][key], key
    assert combined["input"]["documents"] == len(docs_table())
    assert 'data-figure="heatmap"' in page.read_text()
    # the shards' replicas, with what each took from the shared compile caches
    uses = {n: r["compile_cache"] for n, r in combined["engine"]["replicas"].items()}
    for name, use in uses.items():
        if use is not None:
            cell = (f'data-col="compile cache">{use["fetched_files"]} files fetched, '
                    f'{use["hits"]} hits')
            assert cell in page.read_text(), name
    assert sum(u is not None for u in uses.values()) >= 2
    # the full run is another configuration (its input, scoring): refused, by name
    res = run_cli(["report", outs[0], out], env)
    assert res.returncode == 2 and "only outputs of one configuration combine" in res.stderr
