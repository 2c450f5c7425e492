"""Speed of the faithfulness metrics against Quantus's on the same model, inputs and settings.

Run: ``python -m salbench.perf.faithfulness_vs_quantus [--batch N] [--size S] [--repeats R] [--device cpu|cuda]``.

One workload: a small CNN (two conv blocks, global average pooling, linear; 10 classes) on a
batch of N single-channel S×S images in [0, 1] (Quantus's IROF cannot fill masks of
multi-channel images) with one random attribution map. Each metric that Quantus also has runs
with settings aligned so that both compute the same quantity (tests/metrics check that they
agree): a constant fill of 0 (``perturb_baseline=0.0``), element units, no normalisation:

- ``faithfulness_correlation`` vs ``FaithfulnessCorrelation``: 100 subsets of 224 pixels;
- ``monotonicity_correlation`` vs ``MonotonicityCorrelation``: every pixel, one deterministic
  draw (fill 0; Quantus's ``nr_samples=1``);
- ``region_perturbation`` vs ``RegionPerturbation``: 4×4 patches, all of them removed;
- ``irof`` vs ``IROF``: SLIC superpixels (100 requested), fill 0;
- ``road_morf`` vs ``ROAD``: 10 %, ..., 90 %, noise 0.01 (Quantus returns accuracies, which
  cost the same model calls).

Not compared: ``infidelity`` (Quantus's ``Infidelity`` is another estimator: every patch of a
grid at several sizes in turn) and ``comprehensiveness``/``sufficiency`` (Quantus has no
ERASER metric; its ``Sufficiency`` is Dasgupta et al.'s).

The two sides run in interleaved repeats (ours, Quantus, ours, ...) after one warm-up each,
timed by :func:`salbench.perf.timing.interleaved_medians`; the table gives medians and ours/Quantus (target
≤ 1.0). Only ratios within one run are meaningful. Quantus's AUC helper calls ``np.trapz``,
removed in NumPy 2.4: this script maps it to ``np.trapezoid`` for IROF when it is missing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
from salbench import metrics
from salbench.perf.insertion_deletion import small_cnn
from salbench.perf.timing import interleaved_medians
from torch import nn


def pairs(quantus, size: int) -> dict[str, tuple[object, object]]:
    """(ours, Quantus's) per metric, with aligned settings."""
    common = {"normalise": False, "return_aggregate": False, "disable_warnings": True, "display_progressbar": False}
    percentages = [10, 20, 30, 40, 50, 60, 70, 80, 90]
    regions = (size // 4) ** 2
    return {
        "faithfulness_correlation": (
            metrics.get("faithfulness_correlation", n_samples=100, subset_size=224, unit="feature"),
            quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, perturb_baseline=0.0, **common),
        ),
        "monotonicity_correlation": (
            metrics.get("monotonicity_correlation", baseline=0.0, unit="feature"),
            quantus.MonotonicityCorrelation(nr_samples=1, perturb_baseline=0.0, **common),
        ),
        "region_perturbation": (
            metrics.get("region_perturbation", region=4, n_regions=regions, baseline=0.0),
            quantus.RegionPerturbation(patch_size=4, regions_evaluation=regions, perturb_baseline=0.0, **common),
        ),
        "irof": (metrics.get("irof", baseline=0.0), quantus.IROF(perturb_baseline=0.0, **common)),
        "road_morf": (
            metrics.get("road_morf", percentages=tuple(p / 100 for p in percentages)),
            quantus.ROAD(percentages=percentages, noise=0.01, **common),
        ),
    }


def jobs(
    quantus, model: nn.Module, x: torch.Tensor, attr: torch.Tensor, target: torch.Tensor
) -> dict[str, dict[str, Callable[[], object]]]:
    """Per metric, the two calls to time."""
    device = x.device
    x_np, attr_np, target_np = x.cpu().numpy(), attr.cpu().numpy(), target.cpu().numpy()
    out = {}
    for name, (ours, theirs) in pairs(quantus, x.shape[-1]).items():
        out[name] = {
            "ours": lambda ours=ours: ours.evaluate_curve(model, x, attr, target),
            "quantus": lambda theirs=theirs: theirs(
                model=model, x_batch=x_np, y_batch=target_np, a_batch=attr_np, device=str(device)
            ),
        }
    return out


def main() -> None:
    import quantus  # only this script needs it

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # Quantus's calculate_auc; removed in NumPy 2.4
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="images per batch")
    parser.add_argument("--size", type=int, default=28, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each side (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    model = small_cnn().to(device)
    x = torch.rand(args.batch, 1, args.size, args.size, generator=gen).to(device)
    attr = torch.randn(x.shape, generator=gen).to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    work = jobs(quantus, model, x, attr, target)
    med = {key: seconds * 1e3 for key, seconds in interleaved_medians(work, args.repeats, device).items()}
    print(f"device {device}, torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch} × 1×{args.size}×{args.size}, {args.repeats} interleaved repeats; medians in ms")  # fmt: skip
    header = f"{'metric':<26} {'ours':>10} {'quantus':>10} {'ours/quantus':>13}"
    print(header)
    print("-" * len(header))
    for name in work:
        ours, theirs = med[name, "ours"], med[name, "quantus"]
        print(f"{name:<26} {ours:>10.1f} {theirs:>10.1f} {ours / theirs:>13.2f}")


if __name__ == "__main__":
    main()
