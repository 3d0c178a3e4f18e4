from qcraft_ray.config_reference import markdown
from tests.conftest import REPO


def test_config_reference_in_readme_is_current():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    assert readme[readme.index(start) + len(start):readme.index(end)] == markdown(), \
        "regenerate the README's config reference from qcraft_ray.config_reference.markdown()"


def test_readme_starts_with_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert first_block.startswith("bash scripts/run_sample.sh")
    assert "bash scripts/test.sh" in first_block
    assert "bash scripts/test.sh" in (REPO / ".ci/run").read_text()
