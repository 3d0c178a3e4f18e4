"""The report page's parts without Ray: language x type grids, the timeline (thinned,
its events), the cost line, and one report across outputs of one configuration (added
up, or refused)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from qcraft_ray.errors import OutputPathError
from qcraft_ray.finalise import finalise
from qcraft_ray.io.plan import InputFile, InputPlan
from qcraft_ray.ledger.counts import RowCounts
from qcraft_ray.ledger.state import now_iso, open_run
from qcraft_ray.mode import Mode
from qcraft_ray.progress import FinalProgress, ProgressTracker
from qcraft_ray.report.combine import combine, expand, read_finished
from qcraft_ray.report.commands import report_command
from qcraft_ray.report.cost import run_cost
from qcraft_ray.report.figures import heatmap, startup, timeline
from qcraft_ray.report.grid import grids
from qcraft_ray.telemetry import EngineOccupancy, ReplicaEngine, ReplicaReady, StartupPhases
from qcraft_ray.timeline import MAX_POINTS, Timeline, TimelinePoint, TimelineRecorder
from tests.unit.test_finalise import doc_rows, setup, write


def counts() -> RowCounts:
    return RowCounts(
        by_language_type={
            "english/query": {"ok": 9, "none": 1},
            "english/title": {"ok": 10},
            "japanese/query": {"ok": 5, "none": 5},
            "japanese/title": {"ok": 8, "none": 2, "error": 1},
            "<b>x</b>/query": {"ok": 1},
        },
        signals_by_language_type={
            "english/query": {"language_checked": 9, "wrong_language": 3},
            "japanese/title": {"language_checked": 8},
        },
        output_scores={"english/query": {"sum": 7.2, "n": 9},
                       "japanese/query": {"sum": 1.0, "n": 5}},
    )


def test_grids_put_the_worst_first_and_skip_what_was_not_measured():
    got = {g.measure: g for g in grids(counts(), types=["title", "query"])}
    assert list(got) == ["rows", "none_rate", "wrong_language_rate", "mean_score"]  # no copies
    assert got["rows"].types == ["title", "query"]
    assert got["rows"].cells["japanese"] == {"query": 10, "title": 11}  # errors are outputs
    none = got["none_rate"]
    assert none.languages[0] == "japanese"  # 7 of 21 NONE
    assert none.cells["japanese"]["title"] == round(2 / 11, 4)
    wrong = got["wrong_language_rate"]
    assert wrong.languages[:2] == ["english", "japanese"]
    assert wrong.cells["english"]["query"] == 0.3333
    assert wrong.cells["english"].get("title") is None  # not checked: no value
    score = got["mean_score"]
    assert score.languages[0] == "japanese" and score.worse == "low"  # the lowest mean first
    svg = heatmap(score)
    assert 'data-figure="heatmap"' in svg and 'data-label="japanese/query" data-value="0.2"' in svg
    rows_svg = heatmap(got["rows"])
    assert "<b>" not in rows_svg and "&lt;b&gt;x&lt;/b&gt;" in rows_svg  # names are text


def test_the_timeline_keeps_its_ends_when_thinned_and_its_rates_stay_exact():
    tl = Timeline(interval_s=1.0)
    for i in range(MAX_POINTS * 3):
        tl.add(TimelinePoint(t=float(i), documents=i, outputs=10 * i, output_tokens=200 * i,
                             replicas=2))
    assert len(tl.points) <= MAX_POINTS and tl.interval_s >= 2
    assert tl.points[-1].t == MAX_POINTS * 3 - 1 and tl.points[0].t < 10
    assert {round(r[1], 6) for r in tl.rates()} == {10.0}
    assert {round(r[2], 6) for r in tl.rates()} == {200.0}


def test_the_tracker_keeps_the_replicas_events_and_counts_those_up():
    t = ProgressTracker()
    t.replica_ready(ReplicaReady("a", 10.0, 1000.0, "n1", "10.0.0.1"))
    t.replica_ready(ReplicaReady("b", 12.0, 1001.0, "n2", "10.0.0.2"))
    t.add({"outputs": 5, "output_tokens": 50})
    t.replica_lost("b", at=1030.0)
    t.replica_lost("b", at=1031.0)  # another batch of the same replica: one loss
    t.replica_starting("c")
    sample = t.sample()
    assert sample.counters["outputs"] == 5 and sample.replicas_up == 1
    assert sample.replicas_loading == 1 and sample.replicas_lost == 1
    driver = TimelineRecorder(5.0, start=1002.0, resumed=True)
    driver.point(sample.counters, sample.replicas_up, now=1012.0)
    tl = driver.finish(t.events())
    kinds = [(e.kind, e.replica, e.t) for e in tl.events]
    assert kinds == [("replica_started", "a", -2.0), ("replica_started", "b", -1.0),
                     ("resume", None, 0.0), ("replica_ready", "a", 8.0),
                     ("replica_ready", "b", 11.0), ("replica_lost", "b", 28.0)]
    assert tl.events[-1].node == "10.0.0.2"
    tl.points.append(TimelinePoint(t=30.0, documents=3, outputs=65, output_tokens=650, replicas=1))
    svg = timeline(tl)
    assert svg.count('data-figure="timeline"') == 2 and 'data-event="replica_lost"' in svg


def test_cost_against_the_plan_and_the_startup_bars():
    from qcraft_ray.config import RunConfig

    cfg = RunConfig.model_validate({"input": {"paths": ["f"]}, "output": {"path": "o"},
                                    "generation": {"gpus_per_replica": 2},
                                    "estimate": {"gpu_hour_price": 3.0}})
    phases = StartupPhases(process_s=1.0, imports_s=5.0, weights_s=20.0, other_s=4.0,
                           first_step_s=0.5)
    engine = EngineOccupancy(replicas={
        "r0": ReplicaEngine(load_s=30.0, span_s=3570.0, startup=phases),
        "r1": ReplicaEngine(load_s=40.0, span_s=1760.0)})
    cost = run_cost(engine, cfg, {"engine_hours": 2.0, "cost": 12.0})
    assert cost.engine_hours == 1.5 and cost.gpu_hours == 3.0 and cost.ratio == 0.75
    assert cost.engine_hours_by_gpus == {"2": 1.5} and cost.money == 9.0
    assert run_cost(EngineOccupancy(), cfg, None).ratio is None
    svg = startup(engine.replicas)
    assert 'data-figure="startup"' in svg
    assert 'data-label="r0:weights" data-value="20.0"' in svg
    assert 'data-label="r1:load" data-value="40.0"' in svg  # no phases: load_s as one piece


def test_the_compile_cache_cell():
    from qcraft_ray.report.page import compile_cache_cell
    from qcraft_ray.telemetry import CompileCacheUse

    assert compile_cache_cell(None) == ""  # not configured
    assert compile_cache_cell(CompileCacheUse(fetched_files=7, hits=1, misses=0)) == (
        "7 files fetched, 1 hits, 0 misses")
    assert compile_cache_cell(CompileCacheUse()) == "0 files fetched"  # compiled elsewhere


def test_one_report_across_outputs_adds_them_up_and_refuses_a_mismatch(tmp_path, capsys):
    whole_cfg, plan, state = setup(tmp_path / "whole", docs=3)
    for task, doc in enumerate(range(3)):
        write(whole_cfg, state, task, doc_rows(doc))
    whole = finalise(whole_cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    for i in range(3):  # three one-document runs of the same configuration
        cfg, plan1, st = setup(tmp_path / f"shard-{i}", docs=1)
        write(cfg, st, 0, doc_rows(i, unit_docs=1))
        finalise(cfg, plan1, st, FinalProgress(), now_iso(), 0.0)
    paths = expand([f"{tmp_path}/shard-*"], whole_cfg.storage)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["shard-0", "shard-1", "shard-2"]
    outs = [read_finished(f"{p}/out", whole_cfg.storage) for p in paths]
    run, total = combine(outs)
    assert total.by_language_type == whole.counts.by_language_type
    assert total.outputs == whole.counts.outputs and total.documents == whole.counts.documents
    assert run.input.documents == 3 and run.combined_from == [o.path for o in outs]
    assert run.status == "complete" and len(run.attempts) == 3
    # through the command: the page and the JSON report
    html, js = tmp_path / "all.html", tmp_path / "all.json"
    args = argparse.Namespace(paths=[f"{p}/out" for p in paths], html=str(html), json=str(js))
    assert report_command(args) == 0
    assert "3 outputs" in html.read_text() and 'data-figure="heatmap"' in html.read_text()
    # one local output, no --html: the page goes into the output, which keeps no temp folder
    one = paths[0] + "/out"
    assert report_command(argparse.Namespace(paths=[one], html=None, json=None)) == 0
    assert (Path(one) / "_report.html").is_file() and not (Path(one) / "_temporary").exists()
    assert json.loads(js.read_text())["counts"]["by_language_type"] == whole.counts.to_json()[
        "by_language_type"]
    # another configuration is refused, naming the setting
    data = whole_cfg.model_dump(mode="json")
    data["generation"]["max_new_tokens"] = 99
    data["output"]["path"] = str(tmp_path / "other" / "out")
    other_cfg = type(whole_cfg).model_validate(data)
    plan2 = InputPlan(files=(InputFile("f", "f", 1, (1,), ("text",), None, 1),))
    st2 = open_run(other_cfg, plan2, Mode.GENERATE)
    write(other_cfg, st2, 0, doc_rows(0, unit_docs=1))
    finalise(other_cfg, plan2, st2, FinalProgress(), now_iso(), 0.0)
    other = read_finished(str(tmp_path / "other" / "out"), whole_cfg.storage)
    with pytest.raises(OutputPathError, match=re.escape("generation.max_new_tokens=99")):
        combine([outs[0], other])
    # a shard run on a cluster of its own: settings that may change on resume may differ
    data = whole_cfg.model_dump(mode="json")
    data["generation"]["replicas"] = "1..8"
    data["model"]["cache_dir"] = "/mnt/node-cache"
    data["output"]["path"] = str(tmp_path / "elsewhere" / "out")
    elsewhere_cfg = type(whole_cfg).model_validate(data)
    st3 = open_run(elsewhere_cfg, plan2, Mode.GENERATE)
    write(elsewhere_cfg, st3, 0, doc_rows(0, unit_docs=1))
    finalise(elsewhere_cfg, plan2, st3, FinalProgress(), now_iso(), 0.0)
    elsewhere = read_finished(str(tmp_path / "elsewhere" / "out"), whole_cfg.storage)
    assert combine([outs[0], elsewhere])[0].combined_from == [outs[0].path, elsewhere.path]
    with pytest.raises(OutputPathError, match="no output matches"):
        expand([f"{tmp_path}/nothing-*"], whole_cfg.storage)
