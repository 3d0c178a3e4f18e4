"""The output folder (:class:`OutputFolder`): the only code that touches storage for output."""

from qcraft_ray.store.folder import (
    CHECKPOINT_DIR,
    ICEBERG_DIR,
    LEASE_FILE,
    LOG_DIR,
    MANIFEST_DIR,
    REJECTED_DIR,
    REPORT_FILE,
    REPORT_HTML,
    RUN_FILE,
    SUCCESS_FILE,
    TEMP_DIR,
    THRESHOLDS_FILE,
    OutputFolder,
)
from qcraft_ray.store.retry import RetryPolicy

__all__ = [
    "CHECKPOINT_DIR",
    "ICEBERG_DIR",
    "LEASE_FILE",
    "LOG_DIR",
    "MANIFEST_DIR",
    "REJECTED_DIR",
    "REPORT_FILE",
    "REPORT_HTML",
    "RUN_FILE",
    "SUCCESS_FILE",
    "TEMP_DIR",
    "THRESHOLDS_FILE",
    "OutputFolder",
    "RetryPolicy",
]
