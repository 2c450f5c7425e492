"""The README's Quickstart holds exactly the two commands, and CI runs the test command verbatim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quickstart_has_exactly_two_commands_install_and_run_then_install_and_test():
    run, test = quickstart_commands()
    assert "\n" not in run and "\n" not in test
    assert "pip install" in run and run.endswith("salbench run quickstart --fresh")
    assert "pip install" in test and '".[test]"' in test and "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = quickstart_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines


def extension_blocks() -> dict[str, str]:
    """The code blocks of "Adding your own explainer, attack or metric", by the file name in
    their first comment (``# my_explainer.py``) or their language (the first of each)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Adding your own explainer, attack or metric", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        first = body.splitlines()[0]
        blocks.setdefault(first[2:].strip() if language == "python" and first.startswith("# ") else language, body)
    return blocks


def test_the_extension_path_is_one_file_one_suite_line_and_one_test_that_pass(tmp_path):
    blocks = extension_blocks()
    (tmp_path / "my_explainer.py").write_text(blocks["my_explainer.py"])
    (tmp_path / "test_my_explainer.py").write_text(blocks["test_my_explainer.py"])
    suite = tmp_path / "mine.toml"
    suite.write_text(
        blocks["toml"]
        + '[suite]\nname = "mine"\nsamples = 2\nseeds = [0]\n[[datasets]]\nname = "wdbc"\nmodels = [{ name = "mlp" }]\n'
        '[[recipes]]\nname = "standard"\n[[metrics]]\nname = "deletion"\n'
    )
    script = (
        "import sys, test_my_explainer; from salbench.suite import load_suite; "
        "test_my_explainer.test_gradient_squared_keeps_the_contract(); "
        "s = load_suite(sys.argv[1]); assert [c.explainer.name for c in s.cells] == ['gradient_squared']; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(suite)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_own_model_snippets_are_the_example_that_a_test_runs():
    """"Benchmark your own model" shows examples/own_model (tests/benchmarks/test_own_model.py runs it):
    every code line of its factory block and every key line of its suite block is in those files."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Benchmark your own model", 1)[1].split("\n## ", 1)[0]
    python, toml = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0], re.findall(r"```toml\n(.*?)```", section, flags=re.S)[0]
    example = ROOT / "examples" / "own_model"

    def code(block: str) -> list[str]:
        return [line.split("#")[0].rstrip() for line in block.splitlines() if line.split("#")[0].strip()]

    nets = (example / "nets.py").read_text()
    assert all(line.strip() in nets for line in code(python))
    suite = [line.split("#")[0].rstrip() for line in (example / "suite.toml").read_text().splitlines()]
    assert set(code(toml)) <= set(suite)


QUICKSTART_TABLE = "synthetic_blocks / small_cnn / standard"


def quickstart_table_sections() -> tuple[str, str]:
    """(the README tour's copy of a quickstart leaderboard table, that table in results/quickstart)."""
    readme = (ROOT / "README.md").read_text()
    copy = readme.split(f"#### {QUICKSTART_TABLE} (from `results/quickstart/leaderboard.md`)\n", 1)[1].split("\n![", 1)[0]
    board = (ROOT / "results" / "quickstart" / "leaderboard.md").read_text()
    return copy.strip(), board.split(f"## {QUICKSTART_TABLE}\n", 1)[1].split("\n## ", 1)[0].strip()


def test_the_tours_leaderboard_is_the_committed_quickstart_result():
    """No number of the tour's table is typed: it is the committed leaderboard's section, verbatim."""
    copy, board = quickstart_table_sections()
    assert copy == board
