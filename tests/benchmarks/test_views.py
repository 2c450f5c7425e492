"""Leaderboard views: the [[views]] of a suite, each malformed one refused naming its field."""

from __future__ import annotations

import json

import pytest
from salbench.results import suite_views
from salbench.suite import SUITES_DIR, SuiteError, load_suite, parse_suite
from salbench.views import DEFAULT_VIEW, View, parse_views

GOOD = {"name": "defences", "tables": ["dataset", "model", "explainer"], "rows": ["recipe"], "columns": ["attack", "metric"]}


def test_a_view_defaults_compare_to_its_rows():
    (view,) = parse_views([GOOD])
    assert view == View("defences", ("dataset", "model", "explainer"), ("recipe",), ("attack", "metric"), ("recipe",))
    assert view.rank_within == ("dataset", "model", "explainer", "attack", "metric") and view.accuracy_in_rows
    assert DEFAULT_VIEW.rank_within == ("dataset", "model", "recipe", "attack", "metric")
    assert not DEFAULT_VIEW.accuracy_in_rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"views\[0\]: unknown key\(s\) 'colour'"),
        ({"name": "Two Words"}, r"views\[0\] name"),
        ({"name": "default"}, r"views name: 'default'"),
        ({"rows": []}, r"views\[0\] rows: must be a non-empty list"),
        ({"rows": ["recipes"]}, r"views\[0\] rows: .*among dataset"),
        ({"rows": ["recipe", "explainer"]}, r"named twice: explainer"),
        ({"tables": ["dataset", "model"]}, r"missing: explainer"),
        ({"columns": ["attack", "explainer"], "tables": ["dataset", "model", "metric"]}, r"columns: must include metric"),
        ({"columns": ["recipe", "metric"], "rows": ["attack"]}, r"columns: recipe must be in tables or rows"),
        ({"compare": ["explainer"]}, r"views\[0\] compare: must be among the rows"),
        ({"metrics": "topk_intersection"}, r"views\[0\] metrics: must be a list"),
    ],
)
def test_malformed_views_name_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        parse_views([{**GOOD, **change}])


def test_views_must_be_an_array_of_tables_with_distinct_names():
    with pytest.raises(ValueError, match=r"\[\[views\]\]"):
        parse_views({"name": "x"})
    with pytest.raises(ValueError, match="'defences' names two views"):
        parse_views([GOOD, GOOD])


def quickstart_with(views: str) -> str:
    return (SUITES_DIR / "quickstart.toml").read_text() + "\n" + views


def test_a_suite_carries_its_views_and_checks_their_metrics():
    text = quickstart_with('[[views]]\nname = "by-attack"\ntables = ["dataset", "model", "recipe"]\n'
                           'rows = ["explainer"]\ncolumns = ["attack", "metric"]\nmetrics = ["spearman"]\n')
    suite = parse_suite(text, source="q.toml", base_dir=SUITES_DIR)
    assert [v.name for v in suite.views] == ["by-attack"] and suite.views[0].metrics == ("spearman",)
    with pytest.raises(SuiteError, match=r"q.toml: views\[0\] metrics: \['kendall_tau'\] are not metrics of the suite"):
        parse_suite(text.replace('["spearman"]', '["kendall_tau"]'), source="q.toml", base_dir=SUITES_DIR)
    with pytest.raises(SuiteError, match=r"q.toml: views\[0\] rows"):
        parse_suite(text.replace('rows = ["explainer"]', 'rows = ["sample"]'), source="q.toml", base_dir=SUITES_DIR)


@pytest.mark.parametrize("name", ["r2et2024", "idexpo2024", "dare2023"])
def test_the_defence_suites_declare_a_defence_view(name):
    (view,) = load_suite(name).views
    assert view.rows == ("recipe",) and view.compare == ("recipe",) and "attack" in view.columns


def test_results_find_the_views_of_the_suite_in_provenance(tmp_path):
    info = {"suite": "r2et2024", "source": str(tmp_path / "elsewhere" / "r2et2024.toml")}
    assert [v.name for v in suite_views(info)] == ["defences"]  # looked up by name: the source is gone
    own = tmp_path / "mine.toml"
    own.write_text('[[views]]\nname = "x"\ntables = ["dataset", "model", "recipe"]\nrows = ["explainer", "attack"]\n'
                   'columns = ["metric"]\ncompare = ["attack"]\n')
    assert suite_views(json.loads(json.dumps({"suite": "mine", "source": str(own)})))[0].compare == ("attack",)
