"""Regenerate the README's config reference table from the config models."""

from pathlib import Path

from qcraft_ray.config_reference import markdown

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text(encoding="utf-8")
start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
head, rest = text.split(start, 1)
readme.write_text(head + start + markdown() + end + rest.split(end, 1)[1], encoding="utf-8")
