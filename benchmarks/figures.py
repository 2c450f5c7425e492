"""Figures of a suite's records: robustness heatmaps, insertion/deletion curves, example panels.

All figures are PNG files drawn with seaborn on matplotlib's Agg canvas (no pyplot, so no global
backend is switched and nothing depends on a display), written atomically and deterministically
(no time stamp in the PNG metadata) as 256-colour palette PNGs at 90 dpi, small enough for a
browser and a repository. :func:`write_figures` draws them all from a
:class:`~salbench.results.Results` into ``out_dir/figures``:

- ``heatmap_<metric>.png``: per robustness metric, the mean over samples and seeds as an
  explainer × attack heatmap, one panel per (dataset, model, recipe), all panels on one colour
  scale (one colour bar), so colours compare across panels. The colour map is reversed for
  lower-is-better metrics, so bright is always good.
- ``curves_<metric>.png``: per metric with curves (insertion, deletion), the mean curve of each
  explainer with its pointwise 95% t band, one panel per (dataset, model, recipe, attack).
- ``rejection_<param>.png``: for significance metrics (p-values), the rejection rate at the
  metric's alpha with its exact 95% interval against each data set parameter that varies
  among them (e.g. ``size``: the false positive rate against the image side on null data;
  ``test_delta``: the power against the signal), one line per metric, one panel per setting
  of the other varying parameters that has at least two points.
- ``qq_pvalues.png``: sorted p-values against uniform quantiles, one line per metric, one
  panel per data set setting (on null data valid p-values follow the diagonal).
- ``examples_<dataset>_<explainer>_<attack>_<cell>.png``: for each (dataset, model, recipe, explainer,
  attack) at its lowest seed, the cell's stored examples in
  columns, rows input / explanation / attacked input / attacked explanation (for text: the
  original and attacked texts with words coloured by attribution, see
  :mod:`salbench.text_figures`). Stored examples are channel-first as the data: images
  (N, C, H, W) are drawn as images, volumes (N, C, D, H, W) as their depth slice with the most
  ground-truth mask voxels (the middle slice without a mask), signals (N, C, L) and tables
  (N, F) as one bar per position or feature (a signal's channels averaged for the input and
  summed for the attribution, as insertion/deletion score a position). The attack-free
  cell is drawn only for explainers without an attacked cell (whose figure shows the same
  clean rows).

Example::

    paths = write_figures(load_results("results/quickstart"), "results/quickstart")
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from collections.abc import Iterator, Mapping
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, PngImagePlugin
from salbench import metrics
from salbench.leaderboard import (
    CONFIDENCE,
    SIGNIFICANCE,
    clopper_pearson,
    label_components,
    rejection_indicators,
)
from salbench.results import Results
from salbench.store import atomic_write_bytes
from salbench.text_figures import text_example_figure
from scipy import stats

__all__ = [
    "write_figures", "heatmap_figures", "curve_figures", "example_figures", "significance_figures", "figure_caption",
]

_BENCH = ["dataset", "model", "recipe"]
_DPI = 90
_MAX_PANEL_COLUMNS = 3
_PREFIXES = ("heatmap", "curves", "examples", "compare", "rejection", "qq")  # file name prefixes of the kinds of figure
_CAPTION_KEY = "Description"  # the PNG text chunk that holds a figure's caption
_TITLE_POINTS = 11
_LEGEND_POINTS = 7
_LABEL_CHARS = 24  # tick labels (component labels) are wrapped to lines of at most this many characters


def write_figures(results: Results, out_dir: str | Path) -> list[Path]:
    """Draw every figure of ``results`` into ``out_dir/figures``; returns the written paths, sorted.

    Cells without stored examples get no example figure. Figures of an earlier drawing that the records no longer give
    (``heatmap_*``, ``curves_*``, ``examples_*`` PNGs not written now) are removed, so the folder
    always matches the records.
    """
    target = Path(out_dir) / "figures"
    paths = []
    records, examples = results.records, results.examples
    drawn = chain(
        heatmap_figures(results.summary), curve_figures(records), significance_figures(records),
        example_figures(records, examples), comparison_figures(records, examples),
    )
    for name, figure in drawn:
        path = target / f"{name}.png"
        atomic_write_bytes(path, _png(figure))
        paths.append(path)
    for prefix in _PREFIXES:
        for stale in set(target.glob(f"{prefix}_*.png")) - set(paths):
            stale.unlink()
    return sorted(paths)


def _png(figure: Figure) -> bytes:
    """The figure at :data:`_DPI` as a PNG of at most 256 colours (median cut, no dithering):
    a third of the size of a true-colour PNG, with the same look for plots and text. Its title
    (on one line) is stored as the PNG's ``Description`` text, the caption the report shows."""
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(_DPI)
    canvas.draw()
    rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    buffer = io.BytesIO()
    palette = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(_CAPTION_KEY, " ".join(figure.get_suptitle().split()))
    palette.save(buffer, format="png", optimize=True, pnginfo=info)
    return buffer.getvalue()


def figure_caption(path: str | Path) -> str:
    """The caption stored in a figure written by :func:`write_figures` (its title on one line);
    an error for a PNG without one."""
    with Image.open(path) as image:
        caption = image.info.get(_CAPTION_KEY)
    if not caption:
        raise ValueError(f"figure {path} has no caption (PNG text {_CAPTION_KEY!r}); redraw it with salbench report")
    return caption


def _title(figure: Figure, text: str, points: float = _TITLE_POINTS) -> None:
    """``text`` as the figure's title, wrapped to the figure's width so that no line is cut off
    (a character is taken as 0.6 of the font size wide)."""
    width_points = figure.get_figwidth() * 72
    lines = [textwrap.fill(line, max(20, int(width_points / (0.6 * points)))) for line in text.split("\n")]
    figure.suptitle("\n".join(lines), fontsize=points)


def _wrap_title(ax: Axes, text: str, points: float) -> None:
    """``text`` as the panel's title, wrapped to the panel's width."""
    width_points = ax.get_position().width * ax.figure.get_figwidth() * 72
    ax.set_title(textwrap.fill(text, max(16, int(width_points / (0.5 * points)))), fontsize=points)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "x"


def _panels(n: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels of ``width`` × ``height`` inches, at most 3 per row."""
    cols = min(n, _MAX_PANEL_COLUMNS)
    rows = -(-n // cols)
    figure = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return figure, list(axes[:n])


def _wrap(label: str) -> str:
    """A tick label broken into lines of at most :data:`_LABEL_CHARS` characters (at commas and spaces)."""
    return textwrap.fill(label.replace(",", ", ").replace(",  ", ", "), _LABEL_CHARS, break_long_words=False)


def _arrow(higher: bool) -> str:
    return "↑ higher is better" if higher else "↓ lower is better"


# -- heatmaps -----------------------------------------------------------------------------------
def heatmap_figures(summary: pd.DataFrame) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) per robustness metric of ``summary`` (:func:`salbench.leaderboard.summarize`):
    explainer × attack heatmaps of the mean."""
    robust = summary[(summary["category"] == "robustness") & (summary["attack"] != "none")]
    for metric, part in robust.groupby("metric", sort=True):
        higher = bool(part["higher_is_better"].iloc[0])
        benches = list(part.groupby(_BENCH, sort=True))
        n_expl, n_atk = part["explainer"].nunique(), part["attack"].nunique()
        label_inches = 0.075 * min(_LABEL_CHARS, max(len(e) for e in part["explainer"]))
        with sns.axes_style("white"):
            figure, axes = _panels(len(benches), 2.2 + label_inches + 1.0 * n_atk, 2.0 + 0.45 * n_expl)
            low, high = float(part["mean"].min()), float(part["mean"].max())
            for ax, (bench, panel) in zip(axes, benches):
                grid = panel.pivot(index="explainer", columns="attack", values="mean")
                sns.heatmap(
                    grid, ax=ax, annot=True, fmt=".3g", cmap="viridis" if higher else "viridis_r",
                    vmin=low, vmax=high, cbar=False, linewidths=0.5, annot_kws={"fontsize": 8},
                )
                _wrap_title(ax, " / ".join(bench), 10)
                ax.set_xticklabels([_wrap(t.get_text()) for t in ax.get_xticklabels()], rotation=30,
                                   ha="right", rotation_mode="anchor", fontsize=8)
                ax.set_yticklabels([_wrap(t.get_text()) for t in ax.get_yticklabels()], rotation=0, fontsize=8)
                ax.set(xlabel="attack", ylabel="explainer")
            bar = figure.colorbar(axes[0].collections[0], ax=axes, shrink=min(1.0, 3.0 / figure.get_figheight()))
            bar.set_label("mean (one scale for every panel)", fontsize=8)
        _title(figure, f"{metric} ({_arrow(higher)}; colour and numbers: the leaderboard entry, mean over seeds; attacked entries over the samples the attack moved)")
        yield f"heatmap_{_slug(metric)}", figure


# -- curves -------------------------------------------------------------------------------------
def curve_figures(records: pd.DataFrame) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) per metric with curves: mean curve and 95% band per explainer.

    Each metric says what its curves' x axis is (``Metric.curve_axis``) and where its points lie
    (``Metric.curve_positions``): the fraction of features inserted or deleted, the bins of
    ERASER, the layers randomised by a sanity check, ...
    """
    with_curves = records[records["curve"].notna()] if "curve" in records else records.iloc[:0]
    if with_curves.empty:
        return
    frame = label_components(with_curves)
    explainers = sorted(frame["explainer"].unique())
    palette = dict(zip(explainers, sns.color_palette("colorblind", len(explainers))))
    for metric, part in frame.groupby("metric", sort=True):
        higher = bool(part["higher_is_better"].iloc[0])
        scorer = metrics.get(metric, **json.loads(part["metric_params"].iloc[0] or "{}"))
        panels = list(part.groupby([*_BENCH, "attack"], sort=True))
        with sns.axes_style("whitegrid"):
            figure, axes = _panels(len(panels), 4.2, 3.2)
            for ax, (key, panel) in zip(axes, panels):
                for explainer, rows in panel.groupby("explainer", sort=True):
                    curves = _stack(rows["curve"], f"{metric} / {explainer}")
                    positions = scorer.curve_positions(curves.shape[1]).numpy()
                    _draw_band(ax, curves, positions, explainer, palette[explainer])
                title = " / ".join(key[:3]) + ("" if key[3] == "none" else f" (attack {key[3]})")
                ax.set(xlabel=scorer.curve_axis, ylabel=metric)
                _wrap_title(ax, title, 10)
            _legend_below(figure, axes)
        _title(figure, f"{metric} curves ({_arrow(higher)}; mean and 95% band over samples and seeds)")
        yield f"curves_{_slug(metric)}", figure


def _legend_below(figure: Figure, axes: list[Axes]) -> None:
    """One legend for every panel, below them (outside the axes, so it never covers a line):
    each labelled line once, with the sample counts (``(n=...)``) of its panels merged."""
    handles: dict[str, object] = {}
    counts: dict[str, set[str]] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            name, _, count = label.rpartition(" (n=") if " (n=" in label else (label, "", "")
            handles.setdefault(name, handle)
            counts.setdefault(name, set()).update([count.rstrip(")")] if count else [])
    labels = [_wrap(name + (f" (n={'/'.join(sorted(n, key=int))})" if n else "")) for name, n in counts.items()]
    longest = max(len(line) for label in labels for line in label.split("\n"))
    entry_inches = 0.6 * _LEGEND_POINTS / 72 * longest + 0.6  # text (a character 0.6 of the font size) and line
    columns = max(1, min(len(labels), 3, int(figure.get_figwidth() / entry_inches)))
    figure.legend(list(handles.values()), labels, loc="outside lower center", ncols=columns, fontsize=_LEGEND_POINTS,
                  frameon=False)
    rows = -(-len(labels) // columns)
    figure.set_figheight(figure.get_figheight() + 0.3 * rows)  # room for the legend: the panels keep their height


def _stack(curves: pd.Series, what: str) -> np.ndarray:
    lengths = {len(c) for c in curves}
    if len(lengths) != 1:
        raise ValueError(f"curves of {what} have different lengths {sorted(lengths)}; cannot average them")
    return np.stack([np.asarray(c, dtype=np.float64) for c in curves])


def _draw_band(ax: Axes, curves: np.ndarray, x: np.ndarray, label: str, colour) -> None:
    """Mean curve and pointwise t interval (no band with a single curve) at positions x."""
    n = len(curves)
    mean = curves.mean(axis=0)
    ax.plot(x, mean, color=colour, label=f"{label} (n={n})", linewidth=1.6)
    if n >= 2:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * curves.std(axis=0, ddof=1) / np.sqrt(n)
        ax.fill_between(x, mean - half, mean + half, color=colour, alpha=0.2, linewidth=0)


# -- significance: rejection rates and QQ plots -------------------------------------------------
_SETTING = ["model", "recipe", "explainer", "attack"]


def significance_figures(records: pd.DataFrame) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure): rejection rate against each varying data set parameter, and a QQ plot."""
    frame = records[records["category"] == SIGNIFICANCE] if "category" in records else records.iloc[:0]
    if frame.empty:
        return
    frame = label_components(frame).reset_index(drop=True)
    frame["reject"] = rejection_indicators(frame)
    params = pd.DataFrame([json.loads(p or "{}") for p in frame["dataset_params"]], index=frame.index)
    varying = [c for c in params.columns if params[c].astype(str).nunique() > 1]
    frame = pd.concat([frame, params[varying].add_prefix("param_")], axis=1)
    metrics = sorted(frame["metric"].unique())
    palette = dict(zip(metrics, sns.color_palette("colorblind", len(metrics))))
    alphas = sorted({json.loads(p).get("alpha") for p in frame["metric_params"]})
    for param in varying:
        figure = _rejection_figure(frame, f"param_{param}", [f"param_{v}" for v in varying if v != param], palette, alphas)
        if figure is not None:
            yield f"rejection_{_slug(param)}", figure
    yield "qq_pvalues", _qq_figure(frame, palette)


def _rejection_figure(frame, x: str, others: list[str], palette, alphas) -> Figure | None:
    groups = frame.groupby(others + _SETTING, sort=True, dropna=False)
    panels = [(key, part) for key, part in groups if part[x].nunique() >= 2]
    if not panels:
        return None
    name = x.removeprefix("param_")
    with sns.axes_style("whitegrid"):
        figure, axes = _panels(len(panels), 4.4, 3.4)
        for ax, (key, part) in zip(axes, panels):
            for metric, rows in part.groupby("metric", sort=True):
                rate = rows.groupby(x, sort=True)["reject"].agg(["sum", "count"])
                mean = rate["sum"] / rate["count"]
                low, high = clopper_pearson(rate["sum"], rate["count"])
                xs = rate.index.to_numpy(dtype=float)
                ax.errorbar(xs, mean, yerr=[mean - low, high - mean], label=metric, color=palette[metric],
                            marker="o", markersize=3, capsize=2, linewidth=1.2)
            for alpha in alphas:
                ax.axhline(alpha, color="grey", linestyle="--", linewidth=0.8)
            ax.set(title=_setting_title(others + _SETTING, key), xlabel=name, ylabel="rejection rate", ylim=(-0.02, 1.02))
            ax.title.set_fontsize(8)
        _legend_below(figure, axes)
    alpha_text = ", ".join(f"{a:g}" for a in alphas)
    _title(figure, f"Rejection rate at α = {alpha_text} against {name} (exact 95% intervals)")
    return figure


def _setting_title(columns: list[str], keys: tuple) -> str:
    shown = [f"{c.removeprefix('param_')}={k}" for c, k in zip(columns, keys) if c.startswith("param_")]
    shown += [str(k) for c, k in zip(columns, keys) if not c.startswith("param_") and k != "none"]
    return textwrap.fill(", ".join(shown), 60)


def _qq_figure(frame: pd.DataFrame, palette) -> Figure:
    columns = [c for c in frame.columns if c.startswith("param_")] + ["dataset"] + _SETTING
    panels = list(frame.groupby(columns, sort=True, dropna=False))
    with sns.axes_style("whitegrid"):
        figure, axes = _panels(len(panels), 3.6, 3.4)
        for ax, (key, part) in zip(axes, panels):
            for metric, rows in part.groupby("metric", sort=True):
                p = np.sort(rows["value"].to_numpy(dtype=float))
                p = p[np.isfinite(p)]
                if p.size:
                    uniform = np.arange(1, p.size + 1) / (p.size + 1)
                    ax.plot(uniform, p, label=f"{metric} (n={p.size})", color=palette[metric], linewidth=1.2)
            ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=0.8)
            ax.set(title=_setting_title(columns, key), xlabel="uniform quantile", ylabel="p-value",
                   xlim=(0, 1), ylim=(0, 1))
            ax.title.set_fontsize(8)
        _legend_below(figure, axes)
    _title(figure, "QQ plot of p-values against Uniform(0, 1) (valid tests follow the diagonal on null data)")
    return figure


# -- example panels -----------------------------------------------------------------------------
_ROWS = (("x", "input"), ("attr", "explanation"), ("x_adv", "attacked input"), ("attr_adv", "attacked explanation"))


def example_figures(
    records: pd.DataFrame, stored: Mapping[str, Mapping[str, np.ndarray]]
) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) per example cell (see the module docstring for the choice of cells)
    that has examples in ``stored`` (cell id -> example arrays)."""
    for cell in _example_cells(records).itertuples(index=False):
        if cell.cell_id not in stored:
            continue
        examples = stored[cell.cell_id]
        attack = "" if cell.attack == "none" else f" under {cell.attack}"
        title = f"{cell.dataset} / {cell.model} / {cell.recipe}\n{cell.explainer}{attack} (seed {cell.seed})"
        if "words" in examples:  # text: words on backgrounds coloured by their attribution
            figure = text_example_figure(examples, title)
        else:
            figure = _example_figure(examples, [(key, name) for key, name in _ROWS if key in examples])
            _title(figure, title, 10)
        parts = (cell.dataset, cell.explainer, cell.attack)
        yield "_".join(["examples", *map(_slug, parts), cell.cell_id[:12]]), figure


def _example_cells(records: pd.DataFrame) -> pd.DataFrame:
    """The lowest-seed cell of each (bench, explainer, attack); attack-free ones only if unattacked."""
    frame = label_components(records)
    cells = frame[[*_BENCH, "explainer", "attack", "seed", "cell_id"]].drop_duplicates()
    cells = cells.sort_values([*_BENCH, "explainer", "attack", "seed", "cell_id"], kind="stable")
    cells = cells.drop_duplicates([*_BENCH, "explainer", "attack"])
    attacked = cells.loc[cells["attack"] != "none", [*_BENCH, "explainer"]].drop_duplicates()
    marked = cells.merge(attacked.assign(_has_attack=True), on=[*_BENCH, "explainer"], how="left")
    keep = (marked["attack"] != "none") | marked["_has_attack"].isna()
    return marked[keep].drop(columns="_has_attack")


_SAMPLE_ARRAYS = ("x", "attr", "x_adv", "attr_adv", "mask")
"""The example arrays with one sample per row in the data's layout (``sample`` holds indices)."""


def _drawable(examples: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool, str]:
    """(the examples as drawn, whether as images, the bar axis label) for channel-first stored examples.

    Images (N, C, H, W) as they are; volumes (N, C, D, H, W) cut at each sample's depth slice with
    the most mask voxels (the middle slice where there is no mask), the slice in ``"depth"``;
    signals (N, C, L): the inputs' channel mean and the attributions' channel sum, per position;
    tables (N, F) as they are.
    """
    out, x = dict(examples), examples["x"]
    if x.ndim == 5:
        rows = np.arange(x.shape[0])
        depth = np.full(x.shape[0], x.shape[2] // 2)
        if "mask" in examples:
            voxels = examples["mask"].sum(axis=(1, 3, 4))
            depth = np.where(voxels.any(axis=1), voxels.argmax(axis=1), depth)
        out.update({k: examples[k][rows, :, depth] for k in _SAMPLE_ARRAYS if k in examples}, depth=depth)
        return out, True, ""
    if x.ndim == 3:
        reduce = {"x": np.mean, "x_adv": np.mean, "attr": np.sum, "attr_adv": np.sum, "mask": np.any}
        out.update({k: how(examples[k], axis=1) for k, how in reduce.items() if k in examples})
        return out, False, "position"
    if x.ndim not in (2, 4):
        raise ValueError(
            f"examples x must be (N, F) tables, (N, C, L) signals, (N, C, H, W) images or (N, C, D, H, W) volumes, "
            f"got shape {x.shape}"
        )
    return out, x.ndim == 4, "feature"


def _example_figure(examples: dict[str, np.ndarray], rows: list[tuple[str, str]]) -> Figure:
    examples, image, axis_label = _drawable(examples)
    n = examples["x"].shape[0]
    size = (2.2, 2.2) if image else (3.2, 1.8)
    figure = Figure(figsize=(size[0] * n, size[1] * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), n, squeeze=False)
    titles = _titles(examples)
    for i in range(n):
        limits = _shared_limits(examples, i, image)
        for r, (key, name) in enumerate(rows):
            ax = axes[r, i]
            kind = "input" if key.startswith("x") else "attr"
            (_draw_image if image else _draw_bars)(ax, examples[key][i], kind, limits[kind])
            if i == 0:
                ax.set_ylabel(name, fontsize=9)
            if r == 0:
                ax.set_title(titles[i], fontsize=9)
            if r == len(rows) - 1 and not image:
                ax.set_xlabel(axis_label, fontsize=8)
        if image:
            _map_colour_bar(figure, [axes[r, i] for r, (key, _) in enumerate(rows) if key.startswith("attr")])
    return figure


def _titles(examples: Mapping[str, np.ndarray]) -> list[str]:
    """Column titles: "test sample i" (or "example k" without sample indices), with a volume's slice."""
    if "sample" in examples:
        titles = [f"test sample {s}" for s in examples["sample"]]
    else:
        titles = [f"example {k + 1}" for k in range(examples["x"].shape[0])]
    if "depth" in examples:
        titles = [f"{title}, slice {d}" for title, d in zip(titles, examples["depth"])]
    return titles


def _map_colour_bar(figure: Figure, axes: list[Axes]) -> None:
    """A colour bar of |attribution| below ``axes`` (one sample's clean and attacked maps, drawn
    on the same scale), so a map's brightness can be read as a value."""
    if not axes:
        return
    bar = figure.colorbar(axes[0].images[0], ax=axes, location="bottom", shrink=0.9, aspect=25, pad=0.02)
    bar.set_label("|attribution|", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    bar.ax.xaxis.set_major_locator(MaxNLocator(3))


def _attr_map(attr: np.ndarray) -> np.ndarray:
    """|attribution| summed over channels: (H, W) for an image sample (C, H, W)."""
    return np.abs(attr).sum(axis=0) if attr.ndim == 3 else np.abs(attr)


def _shared_limits(examples: dict[str, np.ndarray], i: int, image: bool) -> dict[str, tuple[float, float]]:
    """Colour/axis limits shared by sample i's clean and attacked panels, so they compare directly."""
    inputs = [examples[k][i] for k in ("x", "x_adv") if k in examples]
    attrs = [examples[k][i] for k in ("attr", "attr_adv") if k in examples]
    if image:
        maps = [_attr_map(a) for a in attrs]
        return {
            "input": (min(float(v.min()) for v in inputs), max(float(v.max()) for v in inputs)),
            "attr": (0.0, max((float(m.max()) for m in maps), default=0.0) or 1.0),  # no maps: a cell without explainer
        }
    bound = {k: max((float(np.abs(v).max()) for v in vs), default=0.0) or 1.0 for k, vs in (("input", inputs), ("attr", attrs))}
    return {k: (-b * 1.05, b * 1.05) for k, b in bound.items()}


def _draw_image(ax: Axes, sample: np.ndarray, kind: str, limits: tuple[float, float]) -> None:
    """Inputs: grey (1 channel, min-max scaled) or RGB (3 channels); attributions: |attr| heat map."""
    low, high = limits
    if kind == "attr":
        ax.imshow(_attr_map(sample), cmap="inferno", vmin=low, vmax=high, interpolation="nearest")
    elif sample.ndim == 3 and sample.shape[0] == 3:
        scaled = (sample - low) / (high - low) if high > low else np.zeros_like(sample)
        ax.imshow(np.transpose(scaled, (1, 2, 0)), interpolation="nearest")
    else:
        grey = sample.mean(axis=0) if sample.ndim == 3 else sample
        ax.imshow(grey, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_bars(ax: Axes, sample: np.ndarray, kind: str, limits: tuple[float, float]) -> None:
    """A tabular sample or its attribution as one bar per feature (index on the x-axis).

    Bars are thick vertical lines (one collection instead of a patch per feature: much faster).
    """
    colours = np.where(sample >= 0, "#3b75af", "#c4463a") if kind == "attr" else "#7f7f7f"
    width = max(1.0, 120.0 / sample.shape[0])
    ax.vlines(np.arange(sample.shape[0]), 0.0, sample, colors=colours, linewidth=width)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlim(-0.6, sample.shape[0] - 0.4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(*limits)
    ax.tick_params(labelsize=7)


# -- explainers side by side under one attack ---------------------------------------------------
def comparison_figures(
    records: pd.DataFrame, stored: Mapping[str, Mapping[str, np.ndarray]]
) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) per (bench, attack) with two or more explainers: their maps side by side.

    Rows: the input, the attacked input of the first explainer, then for each explainer its
    explanation and its attacked explanation (each pair on its own colour scale, since
    explainers differ in scale). Columns: the stored example samples, which are the same for
    every explainer of a bench and seed (the evaluation samples are chosen per model and seed).
    """
    cells = _example_cells(records)
    cells = cells[cells["attack"] != "none"]
    for key, group in cells.groupby([*_BENCH, "attack"], sort=True):
        group = group[group["seed"] == group["seed"].min()]
        loaded = []
        for cell in group.itertuples(index=False):
            examples = stored.get(cell.cell_id, {})
            if "x" in examples:  # text cells have their own example figures, no side-by-side maps
                loaded.append((cell.explainer, examples))
        if len(loaded) < 2:
            continue
        figure = _comparison_figure(loaded)
        *bench, attack = key
        _title(figure, f"{' / '.join(bench)}: explanations before and after {attack}", 10)
        yield "_".join(["compare", _slug(bench[0]), _slug(attack)]), figure


def _comparison_figure(loaded: list[tuple[str, dict[str, np.ndarray]]]) -> Figure:
    first = loaded[0][1]
    for name, examples in loaded[1:]:
        if "sample" in first and not np.array_equal(examples.get("sample"), first["sample"]):
            raise ValueError(f"explainer {name} was evaluated on other samples than {loaded[0][0]}; cannot compare")
    drawn = [(name, *_drawable(examples)) for name, examples in loaded]
    first, image = drawn[0][1], drawn[0][2]
    rows = [("input", first, "x"), ("attacked input", first, "x_adv")]
    rows += [
        (f"{label} of\n{_wrap(name)}", ex, key)
        for name, ex, _, _ in drawn
        for key, label in (("attr", "map"), ("attr_adv", "attacked map"))
    ]
    n = first["x"].shape[0]
    size = (2.0, 2.0) if image else (3.2, 1.6)
    figure = Figure(figsize=(size[0] * n + 1.5, size[1] * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), n, squeeze=False)
    for i in range(n):
        for r, (label, examples, key) in enumerate(rows):
            kind = "input" if key.startswith("x") else "attr"
            limits = _shared_limits(examples, i, image)[kind]
            (_draw_image if image else _draw_bars)(axes[r, i], examples[key][i], kind, limits)
            if i == 0:
                axes[r, i].set_ylabel(label, fontsize=7)
            if r == 0 and "sample" in first:
                axes[r, i].set_title(_titles(first)[i], fontsize=9)
        if image:  # each explainer's pair of maps shares a scale: one bar below the pair
            for pair in range(2, len(rows), 2):
                _map_colour_bar(figure, [axes[pair, i], axes[pair + 1, i]])
    return figure
