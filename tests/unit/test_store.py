"""The output folder on a local disk whose calls fail on demand (an outage injected into
a real filesystem): every call is retried, writes are atomic, nothing leaves the root."""

from __future__ import annotations

import pickle
from collections import Counter

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from qcraft_ray.config import StorageConfig
from qcraft_ray.store import TEMP_DIR, OutputFolder

FAST = StorageConfig(attempts=10, retry_max_backoff_s=0.01)


class Flaky(pafs.FileSystemHandler):
    """The local filesystem, but the next ``fail[name]`` calls of ``name`` raise OSError."""

    def __init__(self) -> None:
        self.fs = pafs.LocalFileSystem()
        self.fail: Counter = Counter()
        self.calls: Counter = Counter()

    def _go(self, name: str, *args, **kwargs):
        self.calls[name] += 1
        if self.fail[name] > 0:
            self.fail[name] -= 1
            raise OSError(f"injected outage in {name}")
        return getattr(self.fs, name)(*args, **kwargs)

    def get_type_name(self): return "flaky"
    def equals(self, other): return self is other
    def normalize_path(self, path): return path
    def get_file_info(self, paths): return self._go("get_file_info", paths)
    def get_file_info_selector(self, selector): return self._go("get_file_info", selector)
    def create_dir(self, path, recursive): return self._go("create_dir", path, recursive=recursive)
    def delete_dir(self, path): return self._go("delete_dir", path)
    def delete_dir_contents(self, path, missing_dir_ok=False):
        return self._go("delete_dir_contents", path, missing_dir_ok=missing_dir_ok)
    def delete_root_dir_contents(self): raise NotImplementedError
    def delete_file(self, path): return self._go("delete_file", path)
    def move(self, src, dest): return self._go("move", src, dest)
    def copy_file(self, src, dest): return self._go("copy_file", src, dest)
    def open_input_stream(self, path): return self._go("open_input_stream", path)
    def open_input_file(self, path): return self._go("open_input_file", path)
    def open_output_stream(self, path, metadata): return self._go("open_output_stream", path)
    def open_append_stream(self, path, metadata): raise NotImplementedError


@pytest.fixture
def flaky(tmp_path):
    handler = Flaky()
    folder = OutputFolder(str(tmp_path / "out"), FAST, filesystem=pafs.PyFileSystem(handler))
    return handler, folder


def test_every_call_rides_out_an_outage(flaky, tmp_path):
    handler, folder = flaky
    ops = ["get_file_info", "create_dir", "delete_dir", "delete_dir_contents", "delete_file",
           "move", "open_input_stream", "open_input_file", "open_output_stream"]

    def outage() -> None:
        for op in ops:
            handler.fail[op] = 1

    outage()
    folder.create()
    outage()
    folder.write_json("_x.json", {"a": 1})
    outage()
    folder.write_parquet("d/t.parquet", pa.table({"v": [1, 2]}))
    outage()
    assert folder.read_json("_x.json") == {"a": 1}
    outage()
    assert folder.read_parquet("d/t.parquet", columns=["v", "absent"]).to_pylist() == [
        {"v": 1}, {"v": 2}]
    outage()
    assert folder.exists("d/t.parquet") and not folder.exists("nothing")
    outage()
    assert folder.list_files("d", ".parquet") == ["d/t.parquet"]
    outage()
    assert sorted(folder.root_entries()) == ["_temporary", "_x.json", "d"]
    outage()
    folder.delete("d/t.parquet")
    folder.delete("d/t.parquet")  # already gone: fine
    outage()
    folder.delete_dir(TEMP_DIR)
    outage()
    folder.clear()
    assert not any((tmp_path / "out").iterdir())
    assert all(handler.calls[op] > 1 for op in ops), handler.calls  # each one was retried


def test_a_long_outage_fails_naming_the_file(flaky):
    handler, folder = flaky
    folder.create()
    handler.fail["open_output_stream"] = 10
    with pytest.raises(OSError, match=r"writing .*/out/_run.json: failed 10 times"):
        folder.write_json("_run.json", {})


def test_missing_file_is_an_answer_not_an_outage(flaky):
    handler, folder = flaky
    folder.create()
    with pytest.raises(FileNotFoundError):
        folder.read_bytes("_nothing.json")
    assert handler.calls["open_input_stream"] == 1


def test_failed_write_publishes_nothing(flaky, tmp_path):
    handler, folder = flaky
    folder.create()
    handler.fail["move"] = 99  # the rename never happens
    with pytest.raises(OSError):
        folder.write_bytes("part.parquet", b"data")
    assert not (tmp_path / "out" / "part.parquet").exists()


def test_compression_and_paths_stay_inside(tmp_path):
    folder = OutputFolder(str(tmp_path / "out"), compression="snappy")
    folder.write_parquet("a.parquet", pa.table({"v": [1]}))
    meta = pq.read_metadata(tmp_path / "out" / "a.parquet")
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    assert not any((tmp_path / "out" / TEMP_DIR).iterdir())  # no temp file left behind
    for bad in ("../x", "/abs", "a/../../x", ""):
        with pytest.raises(ValueError, match="not a path inside the output folder"):
            folder.write_bytes(bad, b"x")


def test_pickled_without_its_client(tmp_path):
    folder = OutputFolder(str(tmp_path / "out"))
    folder.create()
    assert folder.root == str(tmp_path / "out")  # resolved once used
    copy = pickle.loads(pickle.dumps(folder))
    assert copy._client._resolved is None and copy.root_entries() == []


def test_views_of_a_folder_share_one_client(tmp_path):
    """open_run probes output.path with fewer tries: through the same filesystem client."""
    from qcraft_ray.store import RetryPolicy

    folder = OutputFolder(str(tmp_path / "out"))
    probe = folder.with_retry(RetryPolicy(1, 1.0))
    probe.create()  # resolves the client, for both
    assert folder._client._resolved is not None
    assert probe._fs is folder._fs and folder.with_compression("snappy")._fs is folder._fs
    assert (probe.retry.tries, folder.retry.tries) == (1, 8)
    assert folder.with_compression("snappy").compression == "snappy"
    assert folder.compression == "zstd"
