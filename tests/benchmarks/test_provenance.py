"""provenance.json records the git commit salbench ran from and whether its tracked files were edited."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from salbench.provenance import UNKNOWN, code_state, provenance_info
from salbench.runner import RunSummary
from salbench.suite import load_suite

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_code_state_is_the_commit_and_whether_tracked_files_changed(tmp_path):
    package = tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", "-A")
    git(tmp_path / "repo", "commit", "-q", "-m", "first")
    head = git(tmp_path / "repo", "rev-parse", "HEAD")
    assert code_state(package) == {"commit": head, "dirty": False}
    (package / "notes.txt").write_text("untracked output\n")
    assert code_state(package) == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("X = 2\n")
    assert code_state(package) == {"commit": head, "dirty": True}


def test_code_state_is_unknown_outside_a_checkout_or_in_an_untracked_folder(tmp_path):
    assert code_state(tmp_path) == {"commit": UNKNOWN, "dirty": UNKNOWN}
    git(tmp_path, "init", "-q")
    wheel = tmp_path / "site-packages" / "salbench"  # an installed copy inside some other repository
    wheel.mkdir(parents=True)
    (wheel / "__init__.py").write_text("")
    assert code_state(wheel) == {"commit": UNKNOWN, "dirty": UNKNOWN}


def test_provenance_records_the_code_state_of_this_checkout():
    suite = load_suite(Path(__file__).parent / "suites" / "tiny.toml")
    summary = RunSummary(total=1, run=1, skipped=0, failed=0, remaining=0, elapsed_s=1.0)
    state = provenance_info(suite, summary, ["salbench", "run"], 2.0)["code"]
    assert state == code_state()  # a commit and a bool in a checkout, "unknown" in an installed copy
