"""IU chest X-ray reports (benchmarks/datasets/iu_xray_reports.py): parsing, labels, splits, errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import salbench.datasets.data_dir as data_dir_module
import torch
from salbench import datasets
from salbench.core.text import tokenize
from salbench.datasets import load_dataset
from salbench.datasets.data_dir import ENV_VAR
from salbench.datasets.iu_xray_reports import read_reports, report_label

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL = SHARED / "NLMCXR_reports.tgz"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees another's cached bundles or the developer's data directory setting."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def report_xml(findings: str | None, impression: str | None, majors: list[str]) -> str:
    """A report in the layout of ecgen-radiology/N.xml (the elements the loader reads, and a few others)."""

    def section(label, text):
        return f'<AbstractText Label="{label}"/>' if text is None else f'<AbstractText Label="{label}">{escape(text)}</AbstractText>'

    mesh = "".join(f"<major>{escape(m)}</major>" for m in majors)
    return (
        '<?xml version="1.0" encoding="utf-8"?><eCitation><uId id="CXR0"/><MedlineCitation><Article><Abstract>'
        + section("COMPARISON", "None.") + section("INDICATION", "Cough and fever")
        + section("FINDINGS", findings) + section("IMPRESSION", impression)
        + f"</Abstract></Article></MedlineCitation><MeSH>{mesh}<minor>ignored</minor></MeSH></eCitation>"
    )


def write_tgz(path: Path, reports: dict[str, str | bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        directory = tarfile.TarInfo("ecgen-radiology")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        for name, content in reports.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"ecgen-radiology/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


# member names are deliberately out of order in the archive: the loader sorts them
REPORTS = {
    "3.xml": report_xml("The heart is normal.", "No acute disease.", ["normal"]),
    "1.xml": report_xml("Heart size is mildly enlarged.", "Mild cardiomegaly &amp; XXXX.", ["Cardiomegaly/mild"]),
    "2.xml": report_xml("Lungs are clear.", "Normal chest.", ["No Indexing"]),
    "4.xml": report_xml(None, None, ["normal"]),
    "5.xml": report_xml(None, "Right basilar opacity.", ["Opacity/lung/base/right", "Technical Quality of Image Unsatisfactory "]),
    "6.xml": report_xml("  No effusion.  ", None, ["normal", "Technical Quality of Image Unsatisfactory "]),
    "7.xml": report_xml("Clear lungs.", "Normal.", ["Technical Quality of Image Unsatisfactory "]),
}


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_tgz(tmp_path / "reports.tgz", REPORTS)


def test_reports_are_parsed_labelled_and_dropped_by_hand(tiny):
    reports = read_reports(tiny)
    assert reports.texts == [
        "Heart size is mildly enlarged. Mild cardiomegaly &amp; XXXX.",  # 1: the XML text, unescaped once
        "The heart is normal. No acute disease.",  # 3
        "Right basilar opacity.",  # 5: IMPRESSION only
        "No effusion.",  # 6: FINDINGS only, stripped
    ]
    assert reports.labels == [1, 0, 1, 0]
    assert reports.dropped == {"no_text": 1, "unlabelled": 2}  # 4 (no section); 2 and 7 (no finding, not normal)


@pytest.mark.parametrize(
    "terms, label",
    [
        (["normal"], 0),
        (["Normal "], 0),
        (["normal", "Technical Quality of Image Unsatisfactory "], 0),
        (["Cardiomegaly"], 1),
        (["Cardiomegaly", "No Indexing"], 1),
        (["No Indexing"], None),
        ([], None),
        ([" "], None),
        (["normal", "Cardiomegaly"], None),  # contradictory: neither
    ],
)
def test_report_label(terms, label):
    assert report_label(terms) == label


def write_balanced(path: Path, n_per_class: int = 10) -> Path:
    reports = {}
    for i in range(n_per_class):
        reports[f"{2 * i}.xml"] = report_xml(f"Heart normal case{2 * i}.", "No acute disease.", ["normal"])
        reports[f"{2 * i + 1}.xml"] = report_xml(f"Heart enlarged case{2 * i + 1}.", "Cardiomegaly.", ["Cardiomegaly"])
    return write_tgz(path, reports)


def test_load_splits_stratified_with_a_train_only_vocabulary(tmp_path):
    path = write_balanced(tmp_path / "balanced.tgz")
    bundle = load_dataset("iu_xray_reports", {"file": str(path), "max_len": 6})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (14, 2, 4)  # 20 reports: 0.7 / 0.1 / 0.2
    for split in (bundle.train, bundle.val, bundle.test):
        assert torch.bincount(split.y, minlength=2).tolist() == [len(split) // 2] * 2
    assert bundle.input_shape == (2, 6) and bundle.modality == "text" and bundle.num_classes == 2
    # case0..case19 each occur once: below min_freq=2, so UNK everywhere
    assert {"heart", "normal", "enlarged", "no", "acute", "disease", "cardiomegaly"} <= set(bundle.vocabulary.words)
    assert not any(w.startswith("case") for w in bundle.vocabulary.words)
    decoded = bundle.vocabulary.decode(bundle.test.x)
    assert all(t in ("heart normal <unk> no acute disease", "heart enlarged <unk> cardiomegaly") for t in decoded)
    assert all(("normal" in t) == (y == 0) for t, y in zip(decoded, bundle.test.y.tolist()))


def test_load_is_a_function_of_the_seed(tmp_path):
    path = str(write_balanced(tmp_path / "balanced.tgz"))
    a = load_dataset("iu_xray_reports", {"file": path, "seed": 0})
    datasets._cache.clear()
    again = load_dataset("iu_xray_reports", {"file": path, "seed": 0})
    other = load_dataset("iu_xray_reports", {"file": path, "seed": 1})
    assert torch.equal(a.test.x, again.test.x) and not torch.equal(a.test.x, other.test.x)


def test_missing_file_names_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("iu_xray_reports", {"data_dir": str(tmp_path)})
    assert str(tmp_path / "NLMCXR_reports.tgz") in str(err.value)
    assert "Open-i" in str(err.value) and "torchxrayvision" in str(err.value)


def fake_torchxrayvision(root: Path) -> Path:
    package = root / "torchxrayvision"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    return write_balanced(package / "data" / "NLMCXR_reports.tgz")


def test_the_copy_in_torchxrayvision_is_found_without_a_data_directory(tmp_path, monkeypatch):
    fake_torchxrayvision(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    nowhere = tmp_path / "nowhere"  # instead of $SALBENCH_DATA_DIR or ../shared/data
    monkeypatch.setattr(data_dir_module, "search_dirs", lambda data_dir=None: [Path(data_dir or nowhere)])
    assert len(load_dataset("iu_xray_reports", {}).train) == 14
    with pytest.raises(FileNotFoundError, match="elsewhere"):  # an explicit setting is the only place searched
        load_dataset("iu_xray_reports", {"data_dir": str(tmp_path / "elsewhere")})


@pytest.mark.parametrize(
    "reports, match",
    [
        ({"1.xml": report_xml("a", "b", ["normal"]), "2.xml": "<eCitation><MeSH>"}, "ecgen-radiology/2.xml is not well-formed XML"),
        ({"readme.txt": "no reports here"}, "holds no .xml report"),
    ],
)
def test_malformed_archives_are_named(tmp_path, reports, match):
    with pytest.raises(ValueError, match=match):
        read_reports(write_tgz(tmp_path / "bad.tgz", reports))


def test_a_file_that_is_not_a_tgz_is_an_error(tmp_path):
    (tmp_path / "junk.tgz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="junk.tgz is not a readable .tgz archive"):
        load_dataset("iu_xray_reports", {"file": str(tmp_path / "junk.tgz")})


@pytest.mark.parametrize(
    "params, match",
    [
        ({"max_len": 0}, "max_len"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"),
        ({"seed": -1}, "seed"),
        ({"file": ""}, "file must be a non-empty"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("iu_xray_reports", params)


@pytest.mark.skipif(not REAL.is_file(), reason=f"the real IU X-ray reports are not present at {REAL.resolve()}")
def test_real_reports_counts_and_label_balance():
    reports = read_reports(REAL)
    assert len(reports.texts) == 3826 and reports.dropped == {"no_text": 28, "unlabelled": 101}
    assert reports.labels.count(0) == 1363 and reports.labels.count(1) == 2463
    lengths = torch.tensor([len(tokenize(t)) for t in reports.texts], dtype=torch.float)
    assert lengths.quantile(0.95) <= 128 and (lengths > 128).sum() == 17
    bundle = load_dataset("iu_xray_reports", {"data_dir": str(SHARED)})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (2677, 383, 766)
    assert [torch.bincount(s.y).tolist() for s in (bundle.train, bundle.val, bundle.test)] == [
        [954, 1723], [136, 247], [273, 493]
    ]
    assert bundle.input_shape == (2, 128) and len(bundle.vocabulary) == 1322
