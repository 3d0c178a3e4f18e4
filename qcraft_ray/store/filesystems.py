"""Resolve a path or URI to a pyarrow filesystem and a path inside it.

s3:// goes to pyarrow's native S3 filesystem, configured like any AWS tool: the
standard variables (AWS_ENDPOINT_URL[_S3], AWS_REGION, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE) work with no extra config;
``storage`` config keys override endpoint and region. Credentials are never read into
our own objects: the AWS SDK picks them up itself, on whichever process builds the
filesystem, so nothing secret is pickled, logged or written to a report.
Other schemes go through pyarrow's own resolver, then fsspec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from qcraft_ray.config import StorageConfig


def is_uri(path: str) -> bool:
    scheme = urlparse(path).scheme
    return len(scheme) > 1  # "C:" style drive letters are not schemes


@dataclass(frozen=True)
class S3Options:
    """Where object storage is and how to reach it (never the credentials)."""

    endpoint: str | None
    region: str | None
    anonymous: bool


def s3_options(storage: StorageConfig) -> S3Options:
    """The S3 endpoint and region: ``storage`` first, then the AWS environment
    (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``; ``AWS_REGION``, ``AWS_DEFAULT_REGION``)."""
    env = os.environ.get
    return S3Options(
        endpoint=storage.endpoint_url or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL"),
        region=storage.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
        anonymous=storage.anonymous,
    )


def _s3(storage: StorageConfig) -> pafs.S3FileSystem:
    options = s3_options(storage)
    kwargs: dict = {"anonymous": options.anonymous}
    if options.region:
        kwargs["region"] = options.region
    if options.endpoint:
        parsed = urlparse(options.endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        kwargs["force_virtual_addressing"] = False
    return pafs.S3FileSystem(**kwargs)


def resolve(path: str, storage: StorageConfig) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path_inside_it)`` for a local path or a URI."""
    if not is_uri(path) or path.startswith("file://"):
        local = path[len("file://") :] if path.startswith("file://") else path
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(local))
    parsed = urlparse(path)
    if parsed.scheme in ("s3", "s3a"):
        return _s3(storage), (parsed.netloc + parsed.path).rstrip("/")
    try:
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs, inner.rstrip("/")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        import fsspec  # any fsspec-registered protocol (gcsfs, adlfs, hf://, ...)

        fs_obj, inner = fsspec.core.url_to_fs(path)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs_obj)), inner.rstrip("/")


def display(like: str, inner: str) -> str:
    """The name users see for ``inner``: a URI with the scheme of ``like``, or a local path."""
    if not is_uri(like) or like.startswith("file://"):
        return inner
    return f"{urlparse(like).scheme}://{inner}"


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
