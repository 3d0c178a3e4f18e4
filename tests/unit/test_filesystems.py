"""Path resolution: local paths, s3:// configured like any AWS tool, overrides."""

import pyarrow.fs as pafs

from qcraft_ray.config import StorageConfig
from qcraft_ray.store.filesystems import display, resolve


def s3_options(fs):
    return fs.__reduce__()[1][0]  # the options pyarrow would pickle to a worker


def test_local(tmp_path):
    fs, inner = resolve(str(tmp_path / "a"), StorageConfig())
    assert isinstance(fs, pafs.LocalFileSystem) and inner == str(tmp_path / "a")
    fs, inner = resolve(f"file://{tmp_path}/b", StorageConfig())
    assert inner == f"{tmp_path}/b"


def test_s3_from_standard_aws_variables(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    fs, inner = resolve("s3://bucket/some/prefix/", StorageConfig())
    opts = s3_options(fs)
    assert inner == "bucket/some/prefix"
    assert (opts["endpoint_override"], opts["scheme"], opts["region"]) == (
        "127.0.0.1:9000", "http", "eu-west-1")
    # credentials stay with the AWS SDK: never copied into what gets pickled to workers
    assert opts["access_key"] is None and opts["secret_key"] is None
    assert "very-secret" not in repr(fs.__reduce__())


def test_config_overrides_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
    fs, _ = resolve("s3://b/x", StorageConfig())
    assert s3_options(fs)["endpoint_override"] == "127.0.0.1:9001"  # the S3-specific one wins
    fs, _ = resolve("s3://b/x", StorageConfig(endpoint_url="https://minio.internal:9443",
                                              region="us-west-2"))
    opts = s3_options(fs)
    assert (opts["endpoint_override"], opts["scheme"], opts["region"]) == (
        "minio.internal:9443", "https", "us-west-2")


def test_display_names():
    assert display("s3://b/in", "b/in/x.parquet") == "s3://b/in/x.parquet"
    assert display("/data/in", "/data/in/x.parquet") == "/data/in/x.parquet"
