"""How storage calls ride out short outages: waits of 1, 2, 4 ... s, capped, a fixed
number of tries. ``OSError`` is what pyarrow filesystems raise for I/O and network
failures. Its subclasses that describe the state of a path (not found, already there, not
a folder, not allowed) are answers, not outages, and are never retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from qcraft_ray.config import StorageConfig

log = logging.getLogger("qcraft")

T = TypeVar("T")

ANSWERS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """``tries`` per call; waits double from 1 s up to ``max_backoff_s``."""

    tries: int = 8
    max_backoff_s: float = 30.0

    @classmethod
    def for_storage(cls, storage: StorageConfig) -> RetryPolicy:
        """The policy ``storage`` configures (``storage.attempts``, its backoff cap)."""
        return cls(storage.attempts, storage.retry_max_backoff_s)

    def wait_s(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (1-based)."""
        return float(min(2.0 ** (failures - 1), self.max_backoff_s))

    def pause(self, what: str, error: BaseException, failures: int) -> None:
        """Log the failure and sleep before the next try."""
        wait = self.wait_s(failures)
        log.warning(
            "%s: %s; retrying in %.0f s (try %d of %d)",
            what,
            error,
            wait,
            failures + 1,
            self.tries,
        )
        time.sleep(wait)

    def call(self, fn: Callable[[], T], what: str) -> T:
        """``fn()``, tried again on ``OSError`` until ``tries`` tries have failed."""
        for failures in range(1, self.tries + 1):
            try:
                return fn()
            except ANSWERS:
                raise
            except OSError as e:
                if failures == self.tries:
                    raise OSError(f"{what}: failed {self.tries} times; last error: {e}") from e
                self.pause(what, e, failures)
        raise AssertionError("unreachable")
