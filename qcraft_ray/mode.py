"""What a run makes: generated outputs (``qcraft run``) or passages only (``qcraft passages``).

The mode is recorded in ``_run.json`` and the run report (as its value, ``"generate"`` or
``"passages"``), decides the pipeline and names the data files' schema.
"""

from __future__ import annotations

from enum import Enum

import pyarrow as pa

from qcraft_ray import schema as S


class Mode(str, Enum):
    GENERATE = "generate"  # read -> passages -> prompts -> generate -> write
    PASSAGES = "passages"  # read -> passages -> write: a corpus pre-chunked, no engine

    @property
    def schema(self) -> pa.Schema:
        """The data files' schema."""
        return S.OUTPUT_SCHEMA if self is Mode.GENERATE else S.PASSAGES_SCHEMA

    @property
    def generates(self) -> bool:
        """Whether the run generates outputs (and so has prompts, samples and scores)."""
        return self is Mode.GENERATE
