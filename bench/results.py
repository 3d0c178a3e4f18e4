"""Results files whose runs are kept newest first, under a hand-written summary."""

from __future__ import annotations

from pathlib import Path


def add_newest_run(path: Path, title: str, lines: list[str]) -> None:
    """Put this run (``lines``, starting with its ``## Run of ...`` heading) above the
    earlier runs of ``path``, below whatever summary precedes them; print it."""
    run = "\n".join(lines) + "\n"
    if not path.exists():
        path.write_text(f"# {title}\n\nNewest run first.\n\n{run}", encoding="utf-8")
    else:
        old = path.read_text(encoding="utf-8")
        at = old.find("## Run of ")
        new = old.rstrip() + "\n\n" + run if at < 0 else old[:at] + run + "\n" + old[at:]
        path.write_text(new, encoding="utf-8")
    print(run)
