"""Speed of the localisation and complexity metrics against Quantus's on the same maps and masks.

Run: ``python -m salbench.perf.localisation_vs_quantus [--repeats R] [--device cpu|cuda]``.

Two workloads of random maps (standard normal, seeded) with one random rectangular block per
sample as the ground-truth mask (sides between a quarter and a half of the image): 64 maps of
1×28×28 and 16 of 3×128×128. Pairs (Quantus 0.6 with ``normalise=False``, no aggregation, no
warnings): ``pointing_game`` / ``PointingGame``, ``relevance_mass_accuracy`` /
``RelevanceMassAccuracy``, ``relevance_rank_accuracy`` / ``RelevanceRankAccuracy``,
``localisation_auc`` / ``AUC`` (signed maps, ``abs=False`` on both sides), ``sparseness`` /
``Sparseness`` and ``complexity`` / ``Complexity`` (|E|, ``abs=True``). Ours gets the maps and
bool masks as the grid passes them, (N, C, H, W), and pools the channels itself; Quantus gets
the channel-summed map (N, 1, H, W) (of |E| for the complexity pair) and the pooled mask,
computed beforehand and not timed, which is what it needs to compute the same values (the
tests in tests/metrics check that they agree). Quantus's ``AUC`` goes through scikit-learn's
``roc_curve`` and ``auc``, not through its own ``np.trapz`` helper, so it runs under NumPy 2.4
without any patch.

Timed by :func:`salbench.perf.timing.interleaved_medians` (one warm-up each, then repeats that
call ours and Quantus in turn, wall-clock); the table gives medians and ours/Quantus (target
≤ 1.0). Only ratios within one run are meaningful.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable

import numpy as np
import torch
from salbench import metrics
from salbench.perf.timing import interleaved_medians
from torch import Tensor

PAIRS = {  # ours → (Quantus's class, takes |E|)
    "pointing_game": ("PointingGame", False),
    "relevance_mass_accuracy": ("RelevanceMassAccuracy", False),
    "relevance_rank_accuracy": ("RelevanceRankAccuracy", False),
    "localisation_auc": ("AUC", False),
    "sparseness": ("Sparseness", True),
    "complexity": ("Complexity", True),
}


def block_masks(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Bool masks of ``shape`` (N, C, H, W): one rectangle per sample, in every channel, sides H/4 to H/2."""
    n, _, h, w = shape
    mask = torch.zeros(shape, dtype=torch.bool)
    for i in range(n):
        bh, bw = (int(torch.randint(s // 4, s // 2 + 1, (1,), generator=gen)) for s in (h, w))
        top, left = int(torch.randint(0, h - bh + 1, (1,), generator=gen)), int(torch.randint(0, w - bw + 1, (1,), generator=gen))
        mask[i, :, top : top + bh, left : left + bw] = True
    return mask


def jobs(quantus, attr: Tensor, mask: Tensor, device: torch.device) -> dict[str, dict[str, Callable[[], object]]]:
    """Per metric, the two calls to time: ours on (attr, mask) moved to ``device``, Quantus's on the pooled numpy arrays."""
    on_device, mask_on_device = attr.to(device), mask.to(device)
    region = mask.any(dim=1, keepdim=True).double().numpy()
    out = {}
    for name, (quantus_name, absolute) in PAIRS.items():
        summed = (attr.abs() if absolute else attr).sum(dim=1, keepdim=True).numpy()
        ours = metrics.get(name)
        theirs = getattr(quantus, quantus_name)(normalise=False, abs=absolute, disable_warnings=True)
        inputs = {"model": None, "x_batch": np.zeros_like(summed), "y_batch": np.zeros(len(attr), dtype=int),
                  "a_batch": summed, "channel_first": True}  # fmt: skip
        if "mask" in ours.requires:
            out[name] = {"ours": lambda ours=ours: ours(on_device, mask_on_device), "quantus": lambda t=theirs, i=inputs: t(s_batch=region, **i)}
        else:  # Quantus's Sparseness adds 1e-7 to a_batch in place: give it a fresh copy each call
            out[name] = {"ours": lambda ours=ours: ours(on_device), "quantus": lambda t=theirs, i=inputs: t(**{**i, "a_batch": i["a_batch"].copy()})}
    return out


def main() -> None:
    import quantus  # only this script needs it

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each side (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device for our side, e.g. cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, quantus {quantus.__version__}, {torch.get_num_threads()} thread(s), "
          f"{args.repeats} interleaved repeats; medians in ms")  # fmt: skip
    header = f"{'workload':<16} {'metric':<26} {'ours':>9} {'quantus':>9} {'ours/quantus':>13}"
    print(header)
    print("-" * len(header))
    for shape in [(64, 1, 28, 28), (16, 3, 128, 128)]:
        attr, mask = torch.randn(shape, generator=gen), block_masks(shape, gen)
        work = jobs(quantus, attr, mask, device)
        med = interleaved_medians(work, args.repeats, device)
        workload = f"{shape[0]} × {'×'.join(map(str, shape[1:]))}"
        for name in work:
            ours, theirs = med[name, "ours"] * 1e3, med[name, "quantus"] * 1e3
            print(f"{workload:<16} {name:<26} {ours:>9.2f} {theirs:>9.2f} {ours / theirs:>13.2f}")


if __name__ == "__main__":
    main()
