"""A vLLM logits processor that hangs the engine for real, for the hung-engine test.

Loaded by vLLM inside an engine replica (``generation.engine.kwargs.logits_processors``):
once a request whose prompt holds the token ``QCRAFT_TEST_HANG_TOKEN`` joins the batch,
every engine step blocks forever, as a stuck accelerator call would.
"""

from __future__ import annotations

import os
import threading

from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor


class HangOnToken(LogitsProcessor):
    def __init__(self, vllm_config, device, is_pin_memory) -> None:
        token = os.environ.get("QCRAFT_TEST_HANG_TOKEN")
        self._token = int(token) if token else None
        self._hang = False

    def is_argmax_invariant(self) -> bool:
        return False  # so vLLM runs it for greedy requests too

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None or self._token is None:
            return
        for _, _, prompt, _ in batch_update.added:
            if prompt and self._token in prompt:
                self._hang = True

    def apply(self, logits):
        if self._hang:
            threading.Event().wait()  # never returns
        return logits
