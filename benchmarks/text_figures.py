"""Example figures for text: each word on a background coloured by its attribution.

A text example (stored by the grid runner for text cells) holds per sample the words by word
position (``words``, and ``words_adv`` after an attack, where a position holds its substitute
phrase) and the word attributions (``attr``, ``attr_adv``). :func:`text_example_figure` draws,
for each of the first :data:`SAMPLES` samples, the original text and the attacked text one under the other, each word on a
background from a diverging colour map (red positive, blue negative; one scale per sample, set
by the largest |attribution| of its two texts, so the two compare directly), substituted words
framed and bold. The layout is monospaced and computed from character counts, so the figure is
the same on every machine.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

__all__ = ["text_example_figure", "SAMPLES"]

SAMPLES = 2
"""How many of the stored samples a text figure shows: two texts, original and attacked, fill
a screen; the others stay in the store."""

_COLUMNS = 96  # characters per line
_FONT = 8.5
_CMAP = colormaps["RdBu_r"]


def text_example_figure(examples: dict[str, np.ndarray], title: str = "") -> Figure:
    """Original and attacked texts of the first :data:`SAMPLES` stored samples with their word attributions.

    Args:
        examples: ``words`` (N, L) str and ``attr`` (N, L) float, optionally ``words_adv`` and
            ``attr_adv`` of the same shapes and ``sample`` (N,) test indices. Empty strings mark
            positions beyond a text's last word.
        title: the figure's title.
    """
    words, attr = examples["words"], examples["attr"]
    if words.ndim != 2 or attr.shape != words.shape:
        raise ValueError(f"text examples need words and attr of one shape (N, L), got {words.shape} and {attr.shape}")
    rows = [("original", "words", "attr")] + ([("attacked", "words_adv", "attr_adv")] if "words_adv" in examples else [])
    blocks = []
    for i in range(min(words.shape[0], SAMPLES)):
        scale = max(float(np.abs(examples[a][i]).max()) for _, _, a in rows) or 1.0
        label = f"test sample {examples['sample'][i]}" if "sample" in examples else f"example {i + 1}"
        for name, w, a in rows:
            changed = words[i] != examples[w][i]
            blocks.append((f"{label}, {name}", _lines(examples[w][i], examples[a][i] / scale, changed)))
    height = sum(len(lines) + 1.6 for _, lines in blocks)
    figure = Figure(figsize=(_COLUMNS * 0.073 + 0.5, 0.2 * height + 0.9), layout="constrained")
    ax = figure.subplots()
    _draw(ax, blocks, height)
    colorbar = figure.colorbar(
        _scalar_mappable(), ax=ax, orientation="horizontal", fraction=0.04, pad=0.01, aspect=50
    )
    colorbar.set_label("word attribution / largest |attribution| of the sample (framed: substituted)", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _lines(words: np.ndarray, values: np.ndarray, changed: np.ndarray) -> list[list[tuple[int, str, float, bool]]]:
    """Words wrapped into lines of :data:`_COLUMNS` characters: (column, word, value, changed)."""
    lines, line, column = [], [], 0
    for word, value, flag in zip(words, values, changed):
        if not word:
            continue
        if column and column + len(word) > _COLUMNS:
            lines.append(line)
            line, column = [], 0
        line.append((column, str(word), float(value), bool(flag)))
        column += len(word) + 1
    return lines + [line] if line else lines


def _draw(ax: Axes, blocks: list[tuple[str, list]], height: float) -> None:
    ax.set_xlim(-0.5, _COLUMNS + 0.5)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    y = 0.6
    for label, lines in blocks:
        ax.text(0, y, label, fontsize=_FONT, fontweight="bold", color="#444444", va="center")
        y += 1.1
        for line in lines:
            for column, word, value, changed in line:
                ax.text(
                    column, y, word, fontsize=_FONT, family="monospace", va="center",
                    fontweight="bold" if changed else "normal", color="white" if abs(value) > 0.6 else "black",
                    bbox={"boxstyle": "square,pad=0.12", "facecolor": _CMAP(0.5 + 0.5 * value),
                          "edgecolor": "black" if changed else "none", "linewidth": 1.2},
                )
            y += 1.0
        y += 0.5


def _scalar_mappable() -> ScalarMappable:
    return ScalarMappable(norm=Normalize(-1.0, 1.0), cmap=_CMAP)
