"""Commentary placeholders are filled from the leaderboard summary, or fail loudly."""

import pandas as pd
import pytest
from salbench.commentary import fill


def summary() -> pd.DataFrame:
    base = {"model": "cnn", "recipe": "standard", "explainer": "cam", "attack": "none"}
    return pd.DataFrame([
        {**base, "dataset": "blocks(size=8)", "metric": "p.naive", "mean": 0.2371, "ci_low": 0.21, "ci_high": 0.2649, "n": 1000},
        {**base, "dataset": "blocks(size=16)", "metric": "p.naive", "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 40},
        {**base, "dataset": "blocks(size=8)", "metric": "p.oc", "mean": 0.05, "ci_low": 0.04, "ci_high": 0.065, "n": 1000},
    ])


def test_fills_mean_interval_and_count():
    text = (
        'naive {{ dataset="blocks(size=8)" metric="p.naive" }}, '
        'oc {{dataset="blocks(size=8)" metric="p.oc" show="interval"}}, '
        'n {{ dataset="blocks(size=16)" metric="p.naive" show="n" }}.'
    )
    assert fill(text, summary()) == "naive 0.237, oc 0.050 [0.040, 0.065], n 40."


def test_text_without_placeholders_is_unchanged():
    assert fill("plain | table | 0.5", summary()) == "plain | table | 0.5"


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ('{{ metric="p.naive" }}', "matches 2 leaderboard entries"),
        ('{{ metric="p.missing" }}', "matches 0 leaderboard entries"),
        ('{{ metrik="p.oc" }}', "unknown key"),
        ('{{ metric="p.oc" show="median" }}', "show must be one of"),
        ("{{ metric=p.oc }}", 'key="value" pairs'),
    ],
)
def test_bad_placeholders_are_errors(placeholder, message):
    with pytest.raises(ValueError, match=message):
        fill(placeholder, summary())
