"""A live progress bar (rich) for ``qcraft run`` in a terminal: documents, prompts and
outputs with their rates, the ETA, replicas ready, loading and lost, rows rejected so
far. Fed by the driver's progress thread (:class:`~qcraft_ray.progress.ProgressView`)."""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from qcraft_ray.progress import Sample, duration, eta_seconds


class Bar:
    """The bar, drawn on ``file`` (the terminal); lines printed through :meth:`print`
    appear above it."""

    redraw_s = 1.0

    def __init__(self, file: IO[str]) -> None:
        self.console = Console(file=file, highlight=False, soft_wrap=True)
        self._progress = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            console=self.console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._tasks: dict[str, TaskID] = {
            name: self._progress.add_task(name, total=None, note="")
            for name in ("documents", "prompts", "outputs")
        }
        self._progress.start()

    def print(self, text: str) -> None:
        self.console.print(text, end="", markup=False, highlight=False)

    def _update(self, name: str, **fields: Any) -> None:
        self._progress.update(self._tasks[name], **fields)

    def show(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None:
        get = lambda k: int(sample.counters.get(k, 0))  # noqa: E731
        rate = lambda n: n / elapsed if elapsed > 0 else 0.0  # noqa: E731
        done, read = get("documents_done"), get("documents_read")
        known = read >= total_documents  # the prompt total is known once all is read
        eta = eta_seconds(sample.counters, total_documents, elapsed, already)
        self._update(
            "documents",
            completed=done,
            total=total_documents,
            note=f"{read:,} read · ETA {'-' if eta is None else duration(eta)}",
        )
        self._update(
            "prompts",
            completed=get("prompts_done"),
            total=get("prompts") if known else None,
            note=f"{rate(get('prompts_done')):,.1f}/s · {get('rejected'):,} rejected",
        )
        self._update(
            "outputs",
            completed=get("outputs"),
            note=f"{rate(get('output_tokens')):,.0f} tok/s · replicas {sample.replicas_up} up, "
            f"{sample.replicas_loading} loading, {sample.replicas_lost} lost",
        )

    def close(self, sample: Sample, total_documents: int, elapsed: float, already: int) -> None:
        self.show(sample, total_documents, elapsed, already)
        self.stop()

    def stop(self) -> None:
        """Draw the bar a last time and leave it (again: nothing)."""
        if self._progress.live.is_started:
            self._progress.stop()
