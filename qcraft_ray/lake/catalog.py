"""Load a pyiceberg catalog from the config, S3 settings defaulting to ``storage``.

Secrets never come from the config (it refuses them): pyiceberg merges the
``PYICEBERG_CATALOG__<NAME>__<KEY>`` variables and ``.pyiceberg.yaml`` in, and its
S3 file IO falls back on the AWS SDK's own chain (AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qcraft_ray.config import StorageConfig
from qcraft_ray.config.iceberg import IcebergTable
from qcraft_ray.errors import MissingLakeExtraError
from qcraft_ray.store.filesystems import s3_options

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


def catalog_properties(cfg: IcebergTable, storage: StorageConfig) -> dict[str, str]:
    """The configured properties plus ``s3.endpoint`` / ``s3.region`` from storage."""
    props = dict(cfg.catalog)
    s3 = s3_options(storage)
    if s3.endpoint:
        props.setdefault("s3.endpoint", s3.endpoint)
    if s3.region:
        props.setdefault("s3.region", s3.region)
    if s3.anonymous:
        props.setdefault("s3.anonymous", "true")
    return props


def load(cfg: IcebergTable, storage: StorageConfig) -> Catalog:
    try:
        from pyiceberg.catalog import load_catalog
    except ImportError as e:
        raise MissingLakeExtraError(
            f"Iceberg table {cfg.table} needs pyiceberg: pip install 'qcraft-ray[lake]'"
        ) from e
    return load_catalog(cfg.catalog_name, **catalog_properties(cfg, storage))


def load_table(cfg: IcebergTable, storage: StorageConfig) -> Table:
    return load(cfg, storage).load_table(cfg.table)
