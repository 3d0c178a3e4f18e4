"""The terminal around a run, without Ray: which lines are known-harmless noise (the
messages the sample job printed, verbatim) and which must reach the terminal; the
descriptor-level filter in a real process (C++-style writes included); the live bar; the
summary a run ends with."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

from qcraft_ray.finalise import finalise
from qcraft_ray.ledger.state import now_iso
from qcraft_ray.mode import Mode
from qcraft_ray.progress import FinalProgress, Sample
from qcraft_ray.store import OutputFolder
from qcraft_ray.terminal.bar import Bar
from qcraft_ray.terminal.noise import Classifier
from qcraft_ray.terminal.summary import human_summary
from tests.conftest import REPO
from tests.unit.test_finalise import doc_rows, setup, write

W = "\x1b[36m(MapWorker(MapBatches(Replica)) pid=16150)\x1b[0m "
# seen on the sample job (scripts/run_sample.sh), as the driver's terminal got them
NOISE = [
    "[2026-12-05 03:19:42,064 E 15401 15401] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(Replica))' and ID: 'c615d06274919b7193db59b401000000' has "
    "constructor arguments in the object store and max_restarts > 0. If the arguments ...",
    "2026-12-05 03:19:23,667\tWARNING authentication_token_setup.py:85 -- Token authentication "
    "is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.",
    "2026-12-05 03:19:41,988\tINFO streaming_executor.py:216 -- Execution plan of Dataset d_0: "
    "InputDataBuffer[Input] -> TaskPoolMapOperator[ReadReadFineWeb]",
    "2026-12-05 03:19:42,094\tINFO __init__.py:69 -- [dataset]: A new progress UI is available.",
    W + "(MainProcess pid=16150) INFO 12-05 03:20:21 [model.py:733] Resolved architecture: "
    "Qwen3ForCausalLM",
    W + "(MainProcess pid=16150) WARNING 12-05 03:20:21 [cpu.py:224] Triton is not installed. "
    "triton-cpu is expected on x86 CPUs.",
    W + "(MainProcess pid=16150) WARNING 12-05 03:20:21 [vllm.py:725] Model Runner V2 requires "
    "Triton; using the V1 model runner instead.",
    W + "W1205 03:20:27.159000 16150 torch/_library/triton.py:53] Triton not available, "
    "find_triton_kernels = []",
    W + "[W1205 03:20:28.726881360 utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy",
    W + "(MainProcess pid=16150) WARNING 12-05 03:20:28 [cpu_worker.py:114] libtcmalloc is not "
    "found in LD_PRELOAD. For best performance, ...",
    W + "(MainProcess pid=16150) WARNING 12-05 03:20:30 [torch_utils.py:283] OMP_NUM_THREADS=2 "
    "is set; leaving Torch threads at 2 for serving.",
    W + "Loading safetensors checkpoint shards: 100% Completed | 1/1 [00:00<00:00,  6.36it/s]",
    W,  # a worker's empty line
]
REAL = [
    "2026-12-05 03:19:22,774 qcraft inputs checked: 22 files, 75 documents (0.1 s)",
    "2026-12-05 03:20:12,380 qcraft qcraft progress: documents 0/75 (0.0%) | passages 0",
    W + "qcraft: engine replica vm:16150 ready (43.7 s, 2 torch threads)",
    W + "Traceback (most recent call last):",
    W + "RuntimeError: CUDA out of memory",
    "\x1b[33m(raylet)\x1b[0m ERROR injected-real-error: this line must reach the terminal",
    W + "(MainProcess pid=16150) WARNING 12-05 03:20:28 [scheduler.py:1] KV cache is full",
    "2026-12-05 03:20:12,380\tWARNING worker.py:1 -- A worker died or was killed",
    "qcraft: error: output.path s3://b/out is in use by run ...",
]


@pytest.mark.parametrize("line", NOISE)
def test_known_harmless_lines_are_noise(line):
    assert Classifier().is_noise(line + "\n")


@pytest.mark.parametrize("line", REAL)
def test_real_messages_reach_the_terminal(line):
    assert not Classifier().is_noise(line + "\n")


def test_a_python_warnings_source_line_goes_with_it_and_no_further():
    c = Classifier()
    warning = (W + "/x/vllm/triton_utils/dispatcher.py:138: FutureWarning: "
               "`torch.distributed.reduce_op` is deprecated, please use ReduceOp instead")
    assert c.is_noise(warning + "\n")
    assert c.is_noise(W + '  if hasattr(value, "__dict__"):\n')
    assert not c.is_noise(W + "  an indented line after a real one\n")


CHILD = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, {repo!r})
    from qcraft_ray.terminal.noise import Filtered
    with open({log!r}, "wb") as log, Filtered(log):
        print("2026-12-05 03:19:41,988\\tINFO streaming_executor.py:216 -- Execution plan")
        print("real stdout line")
        print("real stderr line", file=sys.stderr)
        os.write(2, b"[2026 E 1 1] core_worker.cc:2465: Actor has constructor arguments in "
                    b"the object store\\n")
        os.write(2, b"Traceback (most recent call last): written by C\\n")
    print("after the filter")
''')


def test_the_filter_sees_every_write_to_the_descriptors(tmp_path):
    log = tmp_path / "run.log"
    res = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), log=str(log))],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    # while filtered, what passes goes to standard error: standard output is left for the
    # command's result (what is printed after the filter)
    assert res.stdout == "after the filter\n"
    # (two pipes, one reader each: the order between them is not kept)
    assert sorted(res.stderr.splitlines()) == [
        "Traceback (most recent call last): written by C", "real stderr line", "real stdout line"]
    kept = log.read_text()
    assert "Execution plan" in kept and "constructor arguments" in kept
    assert "real stderr line" in kept  # the log has every line


def test_the_bar_shows_documents_prompts_outputs_and_replicas():
    out = io.StringIO()
    bar = Bar(out)
    counters = {"documents_done": 30, "documents_read": 75, "prompts": 300, "prompts_done": 120,
                "outputs": 120, "output_tokens": 2400, "rejected": 4}
    bar.close(Sample(counters, replicas_up=2, replicas_loading=1, replicas_lost=1), 75, 10.0, 0)
    text = out.getvalue()
    assert "documents" in text and "30/75" in text and "120/300" in text
    assert "240 tok/s" in text and "replicas 2 up, 1 loading, 1 lost" in text
    assert "4 rejected" in text and "ETA 0m15s" in text
    bar.stop()  # stopping twice is harmless


def test_the_summary_says_where_everything_is(tmp_path):
    cfg, plan, state = setup(tmp_path)
    for task, doc in enumerate(range(3)):
        write(cfg, state, task, doc_rows(doc))
    report = finalise(cfg, plan, state, FinalProgress(), now_iso(), 0.0)
    folder = OutputFolder(cfg.output.path)
    text = human_summary(report, folder, log="/x/_logs/driver.log")
    out = cfg.output.path
    assert text.startswith(f"qcraft: run {report.run_id} complete")
    assert f"wrote 6 rows in 3 files: {out}/*.parquet" in text
    assert f"report: {out}/_report.html" in text and (tmp_path / "out" / "_report.html").exists()
    assert "/x/_logs/driver.log" in text and "NONE rate 0.0%" in text
    assert f"qcraft inspect {out} --lowest 20" in text
    passages = report.model_copy(update={"mode": Mode.PASSAGES})
    text = human_summary(passages, folder)
    assert f"report: {out}/_report.json" in text and "_report.html" not in text
    assert "qcraft inspect" not in text
