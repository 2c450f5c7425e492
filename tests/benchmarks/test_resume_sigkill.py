"""Issue 14's acceptance: SIGKILL at 20 random points of the quickstart run, each followed by a
resume, gives leaderboards byte-identical to an uninterrupted run.

``salbench run quickstart`` runs in a subprocess, first uninterrupted (its own cold model cache),
then as a chain into another results directory with another cold cache: start, SIGKILL after a
random delay, start again, ..., until 20 kills have landed on a running process; then the last
start runs to the end. A kill can land anywhere: in the start-up, in training (phase 1; the model
cache must not keep a half-written model), in a cell, in a store compaction, in publishing.

Kill points: 20 times p_1 < ... < p_20 drawn uniformly (seeded) over the uninterrupted run's
duration T. The first start (the same run as the uninterrupted one so far) is killed at p_1;
each later start, which first skips what is stored, is killed after the start-up time plus the
gap p_i - p_(i-1), so that the kills sweep the whole run once and the chain costs about
T + 20 start-ups rather than 20 T. The start-up time starts as the time to import the harness
and grows by half a second after each kill that found nothing new stored before the grid was
done (the start spent its time reloading, or on a cell or a model it did not finish), so the
chain always moves on; it halves after a start that ended before its kill (a resume, not a
kill). About 3 minutes on two cores.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from salbench.leaderboard import FORMATS
from salbench.store import comparable, read_records

KILLS = 20
SEED = 14


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "salbench.cli", "run", "quickstart", "--out", str(out), "--quiet"]


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "SALBENCH_CACHE_DIR": str(cache)}


def _start(out: Path, cache: Path, log: Path) -> subprocess.Popen:
    with log.open("ab") as sink:
        return subprocess.Popen(_command(out), env=_env(cache), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)


def _state(out: Path, cache: Path) -> str:
    """Where a killed run had got to: models cached, cells stored (loose/compact), leaderboard written."""
    models = len(list(cache.glob("*.json"))) if cache.exists() else 0
    store = out / "store"
    loose = len(list((store / "cells").glob("*.parquet"))) if (store / "cells").exists() else 0
    compact = (store / "records.parquet").exists()
    return f"models {models}, loose cells {loose}, compact {compact}, leaderboard {(out / 'leaderboard.md').exists()}"


@pytest.mark.slow
def test_sigkill_at_20_random_points_then_resume_gives_byte_identical_leaderboards(tmp_path):
    log = tmp_path / "runs.log"
    begin = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import salbench.runner, salbench.publish"], check=True, env=_env(tmp_path / "unused")
    )
    startup = time.monotonic() - begin
    begin = time.monotonic()
    reference = subprocess.run(_command(tmp_path / "reference"), env=_env(tmp_path / "cache_reference"),
                               capture_output=True, text=True)
    duration = time.monotonic() - begin
    assert reference.returncode == 0, reference.stdout + reference.stderr

    out, cache = tmp_path / "resumed", tmp_path / "cache_resumed"
    rng = random.Random(SEED)
    points = sorted(rng.uniform(0, duration) for _ in range(KILLS))
    gaps = [b - a for a, b in zip([0.0, *points], points)]
    overhead, kills, states = 0.0, 0, []  # the first start has nothing to skip
    while kills < KILLS:
        assert len(states) < 3 * KILLS, f"the kills do not land: {states}"
        before, delay = _state(out, cache), overhead + gaps[kills]
        process = _start(out, cache, log)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            states.append(f"killed after {delay:.1f} s: {_state(out, cache)}")
            stuck = _state(out, cache) == before and not (out / "leaderboard.md").exists()  # publishing stores nothing
            overhead = max(overhead, startup) + (0.5 if stuck else 0.0)
        else:  # it did all it had to: kill the next start sooner
            assert process.returncode == 0, log.read_text()[-3000:]
            states.append(f"ended before its kill at {delay:.1f} s")
            overhead /= 2
    final = _start(out, cache, log)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]
    print(f"start-up {startup:.1f} s, uninterrupted run {duration:.1f} s; chain:", *states, sep="\n  ")

    for extension in sorted(set(FORMATS.values())):
        name = f"leaderboard.{extension}"
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    assert comparable(read_records(out)).equals(comparable(read_records(tmp_path / "reference")))
