"""The README's Quickstart holds exactly the two commands, and CI runs the test command verbatim."""

from __future__ import annotations

import re
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
