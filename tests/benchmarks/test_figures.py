"""Figures: heatmap values and colour direction, curve means and bands, example panels, valid PNGs."""

from __future__ import annotations

import hashlib

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from matplotlib.collections import LineCollection, PolyCollection
from salbench.figures import (
    comparison_figures,
    curve_figures,
    example_figures,
    figure_caption,
    heatmap_figures,
    write_figures,
)
from salbench.leaderboard import summarize
from salbench.results import load_results
from salbench.store import RECORD_COLUMNS, read_store, write_cell

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS = {"topk_intersection": ("robustness", True), "sensitivity": ("robustness", False),
           "insertion": ("faithfulness", True), "parameter_randomisation": ("randomisation", False),
           "road_morf": ("faithfulness", False)}
CURVES = ("insertion", "parameter_randomisation", "road_morf")


def cell(explainer: str, attack: str, values: dict[str, list], dataset: str = "synthetic_blocks",
         seed: int = 0, metric_params: str = "{}") -> tuple[str, pd.DataFrame]:
    """(cell id, records) of one cell; ``values`` maps metric -> per-sample values, or curves for CURVES."""
    cell_id = hashlib.sha256(f"{dataset}{explainer}{attack}{seed}".encode()).hexdigest()
    rows = []
    for metric, per_sample in values.items():
        category, higher = METRICS[metric]
        for sample, v in enumerate(per_sample):
            curve = np.asarray(v, dtype=float) if metric in CURVES else None
            rows.append({
                "suite": "figs", "config_hash": "f" * 64, "cell_id": cell_id, "dataset": dataset,
                "dataset_params": "{}", "model": "small_cnn", "model_params": "{}", "recipe": "standard",
                "recipe_params": "{}", "explainer": explainer, "explainer_params": "{}", "explainer_layer": None, "attack": attack,
                "attack_params": "{}", "seed": seed, "sample": sample, "label": 1, "metric": metric,
                "metric_params": metric_params if metric in CURVES else "{}", "category": category,
                "higher_is_better": higher, "value": float(np.mean(v)), "curve": curve, "note": None,
                "attack_iterations": None, "attack_success": None if attack == "none" else True,
                "label_kept": None if attack == "none" else True, "clean_accuracy": 0.95, "clean_balanced_accuracy": None,
                "model_key": f"model{seed}", "elapsed_s": 0.5, "versions": '{"salbench":"0.1.0"}',
            })
    return cell_id, pd.DataFrame(rows)[list(RECORD_COLUMNS)]


def robustness_records() -> pd.DataFrame:
    cells = [cell(e, a, {"topk_intersection": [m, m + 0.2], "sensitivity": [m, m]})
             for e, a, m in (("grad", "topk", 0.1), ("grad", "mse", 0.3), ("ig", "topk", 0.5), ("ig", "mse", 0.7))]
    return pd.concat([records for _, records in cells], ignore_index=True)


def test_heatmap_annotates_the_means_and_keeps_bright_as_good():
    figures = dict(heatmap_figures(summarize(robustness_records())))
    assert sorted(figures) == ["heatmap_sensitivity", "heatmap_topk-intersection"]
    ax = figures["heatmap_topk-intersection"].axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0.2", "0.4", "0.6", "0.8"]  # means over the two samples
    assert [t.get_text() for t in ax.get_yticklabels()] == ["grad", "ig"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mse", "topk"]
    assert ax.collections[0].get_cmap().name == "viridis"
    assert figures["heatmap_sensitivity"].axes[0].collections[0].get_cmap().name == "viridis_r"  # lower is better


def test_curves_plot_the_mean_with_a_pointwise_t_band():
    curves = {"grad": [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]], "ig": [[1.0, 1.0, 1.0]]}
    frames = [cell(e, "none", {"insertion": c}, metric_params='{"fraction":0.5}')[1] for e, c in curves.items()]
    (stem, figure), = curve_figures(pd.concat(frames, ignore_index=True))
    assert stem == "curves_insertion"
    ax = figure.axes[0]
    grad, ig = ax.lines
    np.testing.assert_allclose(grad.get_xdata(), [0.0, 0.25, 0.5])  # fraction 0.5 of the features
    np.testing.assert_allclose(grad.get_ydata(), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(ig.get_ydata(), [1.0, 1.0, 1.0])
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]  # a single curve gets no band
    half = 12.706204736174698 * np.sqrt(2.0) / np.sqrt(2)  # t_{0.975,1} · sd / √n
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(3.0 + half) and ys.min() == pytest.approx(1.0 - half)


def test_each_metric_draws_its_curves_on_its_own_axis():
    """A sanity check's curve is per layer (1..L, top first), ROAD's at its percentages: not fractions."""
    frames = [cell("grad", "none", {"parameter_randomisation": [[0.9, 0.5, 0.1]]}, metric_params='{"order":"independent"}')[1],
              cell("grad", "none", {"road_morf": [[0.8, 0.6]]}, metric_params='{"percentages":[0.2,0.7]}')[1]]
    figures = dict(curve_figures(pd.concat(frames, ignore_index=True)))
    sanity, road = figures["curves_parameter-randomisation"].axes[0], figures["curves_road-morf"].axes[0]
    np.testing.assert_allclose(sanity.lines[0].get_xdata(), [1.0, 2.0, 3.0])
    assert sanity.get_xlabel() == "layer randomised, top first"
    np.testing.assert_allclose(road.lines[0].get_xdata(), [0.2, 0.7])
    assert road.get_xlabel() == "fraction of pixels imputed"


def test_curves_of_different_lengths_are_an_error():
    frame = cell("grad", "none", {"insertion": [[0.0, 1.0], [0.0, 1.0, 2.0]]})[1]
    with pytest.raises(ValueError, match="different lengths"):
        list(curve_figures(frame))


@pytest.fixture
def stored(tmp_path):
    """A store with an attacked image cell, its attack-free twin, a tabular attack-free cell and a
    cell without examples."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    image = {"x": x, "attr": rng.normal(size=x.shape).astype(np.float32), "x_adv": x + 0.1,
             "attr_adv": rng.normal(size=x.shape).astype(np.float32), "sample": np.array([4, 9])}
    table = {"x": rng.normal(size=(2, 5)).astype(np.float32), "attr": rng.normal(size=(2, 5)).astype(np.float32)}
    specs = [
        ("grad", "topk", "synthetic_blocks", image),
        ("grad", "none", "synthetic_blocks", {k: image[k] for k in ("x", "attr")}),
        ("grad", "none", "wdbc", table),
        ("ig", "topk", "synthetic_blocks", None),
    ]
    for explainer, attack, dataset, examples in specs:
        metric = "insertion" if attack == "none" else "topk_intersection"
        values = [[0.0, 0.5, 1.0]] * 2 if metric == "insertion" else [0.5, 0.7]
        cell_id, frame = cell(explainer, attack, {metric: values}, dataset=dataset)
        write_cell(tmp_path, cell_id, frame, examples)
    return tmp_path, image


def test_example_panels_show_inputs_and_channel_summed_attributions(stored):
    out_dir, image = stored
    stored = read_store(out_dir)
    figures = dict(example_figures(stored.records, stored.examples))
    kinds = sorted(stem.rsplit("_", 1)[0] for stem in figures)
    # not the attack-free twin of the attacked image cell, not the cell without examples
    assert kinds == ["examples_synthetic-blocks_grad_topk", "examples_wdbc_grad_none"]
    attacked = next(f for stem, f in figures.items() if stem.startswith("examples_synthetic-blocks_grad_topk"))
    axes = np.array(attacked.axes[:8]).reshape(4, 2)  # the panels; then one colour bar per sample
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["input", "explanation", "attacked input", "attacked explanation"]
    assert [ax.get_title() for ax in axes[0]] == ["test sample 4", "test sample 9"]
    np.testing.assert_allclose(axes[1, 1].images[0].get_array(), np.abs(image["attr"][1]).sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(axes[3, 0].images[0].get_array(), np.abs(image["attr_adv"][0]).sum(axis=0), rtol=1e-6)
    assert axes[1, 0].images[0].get_clim() == axes[3, 0].images[0].get_clim()  # one colour scale per sample
    bars = attacked.axes[8:]  # a colour bar of |attribution| below each sample's maps, on their scale
    assert len(bars) == 2 and all(bar.get_xlabel() == "|attribution|" for bar in bars)
    assert [bar.get_xlim() for bar in bars] == [axes[1, i].images[0].get_clim() for i in range(2)]
    tabular = next(f for stem, f in figures.items() if stem.startswith("examples_wdbc_grad_none"))
    assert len(tabular.axes) == 4  # two rows (no attack) × two samples
    assert any(isinstance(c, LineCollection) for c in tabular.axes[1].collections)  # bars of the attribution


def test_write_figures_writes_readable_deterministic_pngs(stored):
    out_dir, _ = stored
    results = load_results(out_dir)
    (out_dir / "figures").mkdir()
    (out_dir / "figures" / "heatmap_gone.png").write_bytes(b"stale")  # a figure the records no longer give
    (out_dir / "figures" / "notes.png").write_bytes(b"mine")  # not a figure of ours
    paths = write_figures(results, out_dir)
    assert sorted(p.name for p in (out_dir / "figures").iterdir()) == sorted([p.name for p in paths] + ["notes.png"])
    assert [p.parent for p in paths] == [out_dir / "figures"] * len(paths)
    assert [p.name.split("_")[0] for p in paths] == ["curves", "examples", "examples", "heatmap"]
    first = [p.read_bytes() for p in paths]
    assert write_figures(results, out_dir) == paths
    assert [p.read_bytes() for p in paths] == first  # byte-identical when redrawn
    for path, data in zip(paths, first):
        assert data.startswith(PNG_SIGNATURE)
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and 150 < pixels.shape[0] < 2000 and 150 < pixels.shape[1] < 3000
        assert pixels[..., :3].std() > 0.05  # not blank


def _store_pair(tmp_path, second_samples):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 1, 5, 5)).astype(np.float32)
    for explainer, samples in (("grad", np.array([3, 7])), ("decoy", second_samples)):
        examples = {"x": x, "attr": rng.normal(size=x.shape).astype(np.float32), "x_adv": x + 0.1,
                    "attr_adv": rng.normal(size=x.shape).astype(np.float32), "sample": samples}
        cell_id, records = cell(explainer, "topk", {"topk_intersection": [0.5, 0.5]})
        write_cell(tmp_path, cell_id, records, examples)
    return read_store(tmp_path), rng


def test_comparison_puts_explainers_side_by_side_on_the_same_samples(tmp_path):
    stored, _ = _store_pair(tmp_path, np.array([3, 7]))
    (stem, figure), = comparison_figures(stored.records, stored.examples)
    assert stem == "compare_synthetic-blocks_topk"
    axes = np.array(figure.axes[:12]).reshape(6, 2)
    assert len(figure.axes) == 12 + 2 * 2  # a colour bar below each explainer's pair of maps, per sample
    labels = [ax.get_ylabel() for ax in axes[:, 0]]
    assert labels[:2] == ["input", "attacked input"]
    assert labels[2:] == ["map of\ndecoy", "attacked map of\ndecoy", "map of\ngrad", "attacked map of\ngrad"]
    assert [ax.get_title() for ax in axes[0]] == ["test sample 3", "test sample 7"]


def test_comparison_refuses_explainers_scored_on_different_samples(tmp_path):
    stored, _ = _store_pair(tmp_path, np.array([3, 8]))
    with pytest.raises(ValueError, match="other samples"):
        list(comparison_figures(stored.records, stored.examples))


def _rendered(figure):
    """The figure drawn at the written resolution, and its bounding box in display units."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(90)
    canvas.draw()
    return canvas.get_renderer(), figure.bbox


def _inside(extent, box) -> bool:
    return extent.x0 >= box.x0 - 0.5 and extent.x1 <= box.x1 + 0.5 and extent.y0 >= box.y0 - 0.5 and extent.y1 <= box.y1 + 0.5


LONG = 'decoy(base=integrated_gradients, base_params={"steps":8})'


def test_one_panel_figures_keep_their_titles_and_legend_inside_and_off_the_curves():
    curves = {LONG: [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]], "gradient": [[1.0, 1.0, 1.0]]}
    frames = [cell(e, "none", {"insertion": c}, dataset="a_data_set_with_a_long_name")[1] for e, c in curves.items()]
    (_, curves_figure), = curve_figures(pd.concat(frames, ignore_index=True))
    (_, heatmap), _ = heatmap_figures(summarize(robustness_records()))
    for figure in (curves_figure, heatmap):  # one panel each: the narrowest figures
        renderer, box = _rendered(figure)
        texts = [figure._suptitle, *(ax.title for ax in figure.axes if ax.get_title())]
        for text in texts:
            assert _inside(text.get_window_extent(renderer), box), text.get_text()
    renderer, box = _rendered(curves_figure)
    (legend,) = curves_figure.legends
    ax = curves_figure.axes[0]
    legend_box = legend.get_window_extent(renderer)
    assert _inside(legend_box, box) and not legend_box.overlaps(ax.get_window_extent(renderer))
    assert not ax.get_legend()  # no legend drawn over the curves
    assert [t.get_text().replace("\n", " ") for t in legend.get_texts()] == [f"{LONG} (n=2)", "gradient (n=1)"]


def test_written_figures_carry_their_title_as_caption(stored):
    out_dir, _ = stored
    for path in write_figures(load_results(out_dir), out_dir):
        caption = figure_caption(path)
        assert caption and "\n" not in caption and path.stem not in caption
        assert caption.split()[0] in {"insertion", "topk_intersection", "synthetic_blocks", "wdbc"}
    Image.new("RGB", (4, 4)).save(out_dir / "plain.png")
    with pytest.raises(ValueError, match="has no caption"):
        figure_caption(out_dir / "plain.png")


def test_heatmap_panels_share_one_colour_scale():
    low = robustness_records()
    high = low.assign(dataset="wdbc", value=low["value"] + 1.0)
    (_, figure), _ = heatmap_figures(summarize(pd.concat([low, high], ignore_index=True)))
    panels, bars = figure.axes[:2], figure.axes[2:]
    # sensitivity (the first metric) means: 0.1 … 0.7 on one data set, 1.1 … 1.7 on the other
    assert [ax.collections[0].get_clim() for ax in panels] == [(pytest.approx(0.1), pytest.approx(1.7))] * 2
    assert len(bars) == 1  # one colour bar for the figure, not one per panel


def test_volume_examples_are_drawn_at_the_slice_with_most_mask_and_signals_as_bars_per_position(tmp_path):
    """A volume sample is cut where its mask has most voxels (the middle slice without a mask), its
    map drawn as the channel sum of |E| on that slice; a signal's map is one bar per position with
    the channel sum of E; both side by side with another explainer."""
    rng = np.random.default_rng(2)
    volume = rng.normal(size=(2, 2, 5, 4, 4)).astype(np.float32)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[0, :, 3, 1:3, 1:3] = True
    mask[0, :, 1, 0, 0] = True  # fewer voxels than slice 3
    signal = rng.normal(size=(2, 2, 12)).astype(np.float32)
    for dataset, x, extra in (("synthetic_volumes", volume, {"mask": mask}), ("synthetic_signals", signal, {})):
        for explainer in ("grad", "ig"):
            examples = {"x": x, "attr": rng.normal(size=x.shape).astype(np.float32), "x_adv": x + 0.1,
                        "attr_adv": rng.normal(size=x.shape).astype(np.float32), "sample": np.array([3, 8]), **extra}
            cell_id, records = cell(explainer, "topk", {"topk_intersection": [0.5, 0.5]}, dataset=dataset)
            write_cell(tmp_path, cell_id, records, examples)
    stored = read_store(tmp_path)
    figures = dict(example_figures(stored.records, stored.examples))
    grad = {stem.split("_")[1]: figure for stem, figure in figures.items() if "_grad_" in stem}
    axes = np.array(grad["synthetic-volumes"].axes[:8]).reshape(4, 2)
    assert [ax.get_title() for ax in axes[0]] == ["test sample 3, slice 3", "test sample 8, slice 2"]
    attr = stored.examples[next(c for c in stored.examples if stored.examples[c]["x"].ndim == 5 and
                                stored.records.loc[stored.records.cell_id == c, "explainer"].iloc[0] == "grad")]["attr"]
    np.testing.assert_allclose(axes[1, 0].images[0].get_array(), np.abs(attr[0, :, 3]).sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(axes[1, 1].images[0].get_array(), np.abs(attr[1, :, 2]).sum(axis=0), rtol=1e-6)
    signal_axes = np.array(grad["synthetic-signals"].axes).reshape(4, 2)
    bars = next(c for c in signal_axes[1, 0].collections if isinstance(c, LineCollection))
    signal_attr = stored.examples[next(c for c in stored.examples if stored.examples[c]["x"].ndim == 3 and
                                       stored.records.loc[stored.records.cell_id == c, "explainer"].iloc[0] == "grad")]["attr"]
    np.testing.assert_allclose([segment[1, 1] for segment in bars.get_segments()], signal_attr[0].sum(axis=0), rtol=1e-6)
    assert signal_axes[3, 0].get_xlabel() == "position"
    compared = dict(comparison_figures(stored.records, stored.examples))
    assert sorted(compared) == ["compare_synthetic-signals_topk", "compare_synthetic-volumes_topk"]
    assert compared["compare_synthetic-volumes_topk"].axes[0].get_title() == "test sample 3, slice 3"
