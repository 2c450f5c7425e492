"""Indiana University chest X-ray reports (Open-i): report text, normal vs abnormal."""

from __future__ import annotations

import importlib.util
import os
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from salbench.core.text import tokenize
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Dataset
from salbench.datasets.data_dir import ENV_VAR, find_data_file
from salbench.datasets.text import (
    build_text_bundle,
    check_text_params,
    stratified_holdout,
)

__all__ = ["IUXrayReports", "Reports", "read_reports", "report_label"]

FILE = "NLMCXR_reports.tgz"
SECTIONS = ("FINDINGS", "IMPRESSION")
NON_FINDINGS = frozenset({"no indexing", "technical quality of image unsatisfactory"})
"""MeSH major terms that say nothing about the patient: no label, or a remark on image quality."""


@dataclass(frozen=True)
class Reports:
    """The labelled reports of an archive (in archive-member name order) and how many were dropped, by reason."""

    texts: list[str]
    labels: list[int]
    dropped: dict[str, int]


@register("iu_xray_reports")
class IUXrayReports(Dataset):
    """IU chest X-ray reports: FINDINGS + IMPRESSION text, normal (0) vs abnormal (1) from MeSH terms.

    Data: the Indiana University Chest X-ray Collection (Demner-Fushman et al., "Preparing a
    collection of radiology examinations for distribution and retrieval", JAMIA 23(2), 2016),
    via Open-i, CC BY-NC-ND 4.0: ``NLMCXR_reports.tgz`` holds 3,955 reports as XML
    (``ecgen-radiology/N.xml``), each with the sections COMPARISON, INDICATION, FINDINGS and
    IMPRESSION and the MeSH major terms that annotators assigned to it.

    Text: the FINDINGS and IMPRESSION sections joined by a space (COMPARISON and INDICATION are
    not the radiologist's reading). The de-identification mark "XXXX" is kept as a word.

    Label (from the MeSH major terms, compared case-insensitively): 0 (normal) if the only term
    is "normal"; 1 (abnormal) if at least one term names a finding (e.g. "Cardiomegaly/mild",
    "Opacity/lung/base") and none is "normal". "No Indexing" (the report was not annotated) and
    "Technical Quality of Image Unsatisfactory" (image quality, not the patient) are not
    findings.

    Dropped, counted by :func:`read_reports` (``Reports.dropped``), on the full archive:
    ``no_text``: 28 reports with neither FINDINGS nor IMPRESSION; ``unlabelled``: 101 reports
    whose terms are only "No Indexing" (95) or only "Technical Quality of Image
    Unsatisfactory" (6), so neither normal nor abnormal (no report mixes "normal" with a
    finding, which would also be unlabelled). Kept: 3,826 reports, 1,363 normal (35.6 %) and
    2,463 abnormal (64.4 %).

    Splits: stratified by label (``sklearn.model_selection.train_test_split``,
    ``random_state=seed``): ``test_fraction`` of all kept reports into test, then
    ``val_fraction`` of all (``val_fraction / (1 - test_fraction)`` of the rest) into val; with
    the defaults 2,677 / 383 / 766. The vocabulary is built from the train split
    (:func:`~salbench.datasets.text.build_text_bundle`; 1,322 words, PAD and UNK included, at
    the defaults). Text lengths in words: median 34, 95th percentile 78, 99th percentile 110,
    maximum 231; the default ``max_len=128`` truncates 17 of the 3,826 reports (0.4 %).

    Where the file is looked for: ``data_dir`` / ``$SALBENCH_DATA_DIR`` / ``../shared/data``
    (:mod:`salbench.datasets.data_dir`); with no explicit setting, also the copy shipped in
    the torchxrayvision wheel (``torchxrayvision/data/NLMCXR_reports.tgz``). Nothing is
    downloaded.

    Args:
        file: the archive's file name looked up in the data directory, or a path.
        data_dir: the directory holding it; None searches ``$SALBENCH_DATA_DIR`` or ``../shared/data``.
        max_len: token slots per report (L); longer reports are truncated.
        min_freq: minimum number of occurrences in the train split of a vocabulary word.
        val_fraction, test_fraction: fractions of all kept reports in val and test.
        seed: random_state of the stratified splits.

    Example:
        >>> bundle = IUXrayReports().load()  # doctest: +SKIP
        >>> bundle.input_shape, len(bundle.train), len(bundle.vocabulary)  # doctest: +SKIP
        ((2, 128), 2677, 1322)
    """

    modality = "text"

    def __init__(
        self,
        file: str = FILE,
        data_dir: str | None = None,
        max_len: int = 128,
        min_freq: int = 2,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
    ):
        if not isinstance(file, str) or not file:
            raise ValueError(f"file must be a non-empty file name or path of a .tgz archive, got {file!r}")
        check_text_params(max_len, min_freq, seed, val_fraction=val_fraction, test_fraction=test_fraction)
        self.file, self.data_dir = file, data_dir
        self.max_len, self.min_freq, self.seed = max_len, min_freq, seed
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)

    def data_files(self) -> dict[str, Path]:
        return {"data": self._path()}

    def load(self) -> DataBundle:
        reports = read_reports(self._path())
        rest, test = stratified_holdout(reports.labels, self.test_fraction, self.seed)
        rest_labels = [reports.labels[i] for i in rest]
        train, val = stratified_holdout(rest_labels, self.val_fraction / (1 - self.test_fraction), self.seed)
        parts = {"train": rest[train], "val": rest[val], "test": test}
        splits = {
            name: ([reports.texts[i] for i in index], [reports.labels[i] for i in index])
            for name, index in parts.items()
        }
        return build_text_bundle(splits, num_classes=2, max_len=self.max_len, min_freq=self.min_freq)

    def _path(self) -> Path:
        try:
            return find_data_file(self.file, self.data_dir, how_to_get=_HOW_TO_GET)
        except FileNotFoundError:
            explicit = self.data_dir is not None or os.environ.get(ENV_VAR) or self.file != FILE
            shipped = None if explicit else _torchxrayvision_copy()
            if shipped is None:
                raise
            return shipped


def read_reports(path: str | Path) -> Reports:
    """The labelled report texts of the archive at ``path`` (see :class:`IUXrayReports`).

    Raises:
        ValueError: ``path`` is not a readable .tgz, holds no ``.xml`` report, or a report is
            not well-formed XML (its member name is given).
    """
    try:
        archive = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as err:
        raise ValueError(f"{path} is not a readable .tgz archive of XML reports: {err}") from err
    texts: list[str] = []
    labels: list[int] = []
    dropped = {"no_text": 0, "unlabelled": 0}
    with archive:
        members = sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")),
                         key=lambda m: m.name)
        if not members:
            raise ValueError(f"{path} holds no .xml report (expected ecgen-radiology/N.xml members)")
        for member in members:
            try:
                root = ET.fromstring(archive.extractfile(member).read())
            except ET.ParseError as err:
                raise ValueError(f"{path}: {member.name} is not well-formed XML: {err}") from err
            text, label = _text(root), report_label(m.text or "" for m in root.iter("major"))
            if not tokenize(text):
                dropped["no_text"] += 1
            elif label is None:
                dropped["unlabelled"] += 1
            else:
                texts.append(text)
                labels.append(label)
    return Reports(texts, labels, dropped)


def report_label(major_terms) -> int | None:
    """0 for normal, 1 for abnormal, None for neither (see :class:`IUXrayReports`), from the MeSH major terms."""
    terms = {t.strip().lower() for t in major_terms} - {""}
    normal = "normal" in terms
    findings = terms - NON_FINDINGS - {"normal"}
    if normal and not findings:
        return 0
    if findings and not normal:
        return 1
    return None


def _text(root: ET.Element) -> str:
    sections = {a.get("Label"): (a.text or "").strip() for a in root.iter("AbstractText")}
    return " ".join(sections[s] for s in SECTIONS if sections.get(s))


def _torchxrayvision_copy() -> Path | None:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for package_dir in spec.submodule_search_locations:
        candidate = Path(package_dir) / "data" / FILE
        if candidate.is_file():
            return candidate
    return None


_HOW_TO_GET = (
    f"To get it: download NLMCXR_reports.tgz from Open-i (https://openi.nlm.nih.gov/faq, "
    f"'Indiana University chest X-ray collection'), or `pip install torchxrayvision`, whose wheel ships it "
    f"(torchxrayvision/data/{FILE}, found when no data directory is set); then pass data_dir=DIR or set "
    f"{ENV_VAR}=DIR (or give file= a path)."
)
