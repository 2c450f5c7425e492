"""Cost of decoy-enhanced saliency relative to its base explainers, on a small CNN with 1×28×28 inputs.

Run: ``python -m salbench.perf.decoy [--samples N] [--repeats R] [--loop] [--device cpu|cuda]``.

Workload: the project's ``small_cnn`` (conv 16 → ReLU → max-pool → conv 32 → ReLU → global
average pool → linear, 2 classes; random initialisation, seed 0) on N images drawn uniformly
from [0, 1], explained together in one call. Decoys use the ``decoy`` explainer's defaults:
3×3 patches with stride 3 (100 masks, 200 decoys per image), ε = 0.05 at the last
convolution, 20 signed steps, bounds (0, 1), all decoy rows in one batch. Timed, in
interleaved rounds after one warm-up (so that drifts in machine load hit all alike):

- ``gradient`` and ``smoothgrad`` (n = 50): the base explainers (10 calls per round);
- ``decoys``: decoy generation alone;
- ``decoys, 2 rows/pass`` (with ``--loop``; slow): the same with ``batch_size=2``, i.e. one
  mask (both signs) per pass, which is what a Python loop over the masks would do;
- ``decoy(gradient)`` and ``decoy(smoothgrad)``: the whole explainer.

On a CPU device the time is this process's CPU time (all threads), which other processes
on a shared machine disturb far less than wall-clock time; on CUDA it is synchronised
wall-clock time. The table gives the best time per explanation (per image) over all calls
(as ``timeit`` advises: slower calls measure interference, not the code) and the ratios to
the base explainers; the last line gives the decoys kept. Only ratios within one run are
meaningful.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from salbench import explainers
from salbench.explainers.decoys import DecoyGenerator
from salbench.models.small_cnn import SmallCNN
from salbench.perf.timing import timed

BOUNDS = (0.0, 1.0)
SMOOTHGRAD = {"n_samples": 50, "seed": 0}
CHEAP, CHEAP_CALLS = ("gradient", "smoothgrad"), 10




def jobs(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, loop: bool) -> dict[str, Callable[[], object]]:
    """Every timed workload, by its name in the table."""
    gradient = explainers.get("gradient")
    smoothgrad = explainers.get("smoothgrad", **SMOOTHGRAD)
    decoy_gradient = explainers.get("decoy", bounds=BOUNDS)
    decoy_smoothgrad = explainers.get("decoy", base="smoothgrad", base_params=SMOOTHGRAD, bounds=BOUNDS)
    looped = DecoyGenerator(bounds=BOUNDS, batch_size=2)
    fns = {
        "gradient": lambda: gradient(model, x, target),
        "smoothgrad": lambda: smoothgrad(model, x, target),
        "decoys": lambda: decoy_gradient.decoys(model, x),
        "decoys, 2 rows/pass": lambda: looped(model, x),
        "decoy(gradient)": lambda: decoy_gradient(model, x, target),
        "decoy(smoothgrad)": lambda: decoy_smoothgrad(model, x, target),
    }
    if not loop:
        del fns["decoys, 2 rows/pass"]
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2, help="images explained together in one call")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds over all workloads (after one warm-up)")
    parser.add_argument("--loop", action="store_true", help="also time decoy generation with one mask per pass (slow)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = SmallCNN((1, 28, 28), 2).eval().to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.samples, 1, 28, 28, generator=gen).to(device)
    target = torch.randint(0, 2, (args.samples,), generator=gen).to(device)

    fns = jobs(model, x, target, args.loop)
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            times[name] += [timed(fn, device, cpu_time=True) for _ in range(CHEAP_CALLS if name in CHEAP else 1)]
    per_image = {name: min(values) * 1e3 / args.samples for name, values in times.items()}

    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.samples} images "
          f"1×28×28 per call, {args.repeats} interleaved rounds; best {'wall' if device.type == 'cuda' else 'CPU'} "
          "times in ms per image")  # fmt: skip
    header = f"{'workload':<22} {'ms/image':>10} {'/ gradient':>11} {'/ smoothgrad':>13}"
    print(header)
    print("-" * len(header))
    for name, ms in per_image.items():
        print(f"{name:<22} {ms:>10.1f} {ms / per_image['gradient']:>11.1f} {ms / per_image['smoothgrad']:>13.2f}")
    decoys = DecoyGenerator(bounds=BOUNDS)(model, x)
    stats = decoys.stats()
    total = decoys.kept.shape[1]
    print(f"decoys kept per image: {stats.kept.tolist()} of {total} (discarded {stats.discarded.tolist()})")


if __name__ == "__main__":
    main()
