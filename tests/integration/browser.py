"""Headless Chromium (Debian's package) for report-page tests: the DOM after rendering,
and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (scripts/setup.sh installs Debian's package)"
    return exe


def render(url: str, screenshot: str | None = None, size: str = "1100,1400") -> str:
    """The page's DOM as the browser built it (and a PNG when ``screenshot`` is set)."""
    with tempfile.TemporaryDirectory() as profile:
        base = [chromium(), *FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        if screenshot:
            subprocess.run([*base, f"--screenshot={screenshot}", f"--window-size={size}",
                            "--hide-scrollbars", url], capture_output=True, timeout=120,
                           check=True)
    return dom


class ChartValues(HTMLParser):
    """chart -> {label: value} from data-chart/data-label/data-value attributes, and
    table -> {row: {col: text}} from data-table/data-row/data-col."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, float]] = {}
        self.tables: dict[str, dict[str, dict[str, str]]] = {}
        self._chart = self._table = self._row = self._col = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-chart" in a:
            self._chart = a["data-chart"]
            self.charts[self._chart] = {}
        if "data-label" in a and self._chart:
            self.charts[self._chart][a["data-label"]] = float(a["data-value"])
        if "data-table" in a:
            self._table = a["data-table"]
            self.tables[self._table] = {}
        if "data-row" in a and self._table:
            self._row = a["data-row"]
            self.tables[self._table][self._row] = {}
        self._col = a.get("data-col")

    def handle_data(self, data):
        if self._col and self._table and self._row is not None:
            self.tables[self._table][self._row][self._col] = data

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None
        if tag == "table":
            self._table = None
        if tag == "td":
            self._col = None


def parse(dom: str) -> ChartValues:
    p = ChartValues()
    p.feed(dom)
    return p
