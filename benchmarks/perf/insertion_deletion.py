"""Speed of the insertion + deletion metrics against the bare forward passes they cannot avoid.

Run: ``python -m salbench.perf.insertion_deletion [--repeats R] [--device cpu|cuda]``.

Three workloads: a small CNN on a batch of 32 1×28×28 inputs (pixel units, default step
⌈784/64⌉ = 13 → 62 curve points) and an MLP on 30 features (step 1 → 31 points) with batches of
32 and 1024, all with the per-sample channel-mean baseline. For the tiny MLP the forward pass
costs about as much as the few dozen fixed tensor operations of the metric (validation,
ranking, mask, softmax, area), so its ratio at batch 32 measures per-call overhead; batch 1024
shows it amortised. "ours" is ``insertion`` + ``deletion`` (``evaluate_curve``:
ranking, masked inputs, forward passes, softmax, areas); "bare" is only the forward passes of
the same number of inputs (built beforehand, not timed), in model calls of the same batch size.
The two are timed in interleaved repeats (one workload after the other) so that drifts in
machine load hit both alike; the table gives medians and ours/bare (target ≤ 1.3). Only ratios within one run are meaningful.
Quantus is compared when it is installed, else that column is skipped and the run says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
from collections.abc import Callable

import torch
from salbench import metrics
from salbench.perf.timing import timed
from torch import nn


def small_cnn() -> nn.Module:
    """Two conv blocks, global average pooling, a linear layer: MNIST-sized, 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).eval()  # fmt: skip


def mlp() -> nn.Module:
    """30 → 64 → 64 → 2, ReLU: a WDBC-sized tabular classifier."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)).eval()


def bare_forwards(model: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    """The forward passes alone, in model calls of ``batch_size``."""
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size])




def workload(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, Callable[[], object]], int]:
    """``ours`` and ``bare`` for one model, and the number of model inputs each evaluates."""
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(x.device)
    insertion = metrics.get("insertion", baseline="mean")
    deletion = metrics.get("deletion", baseline="mean")
    points = insertion.evaluate_curve(model, x, attr, target)[1].shape[1]
    inputs = x.repeat_interleave(points, dim=0)  # the same count and shape; values do not matter

    def ours() -> None:
        insertion.evaluate_curve(model, x, attr, target)
        deletion.evaluate_curve(model, x, attr, target)

    def bare() -> None:
        bare_forwards(model, inputs, insertion.batch_size)
        bare_forwards(model, inputs, deletion.batch_size)

    return {"ours": ours, "bare": bare}, 2 * len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats of each workload (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    cases = {
        "CNN 1×28×28, 32": (small_cnn(), torch.rand(32, 1, 28, 28, generator=gen), 10),
        "MLP 30, 32": (mlp(), torch.randn(32, 30, generator=gen), 2),
        "MLP 30, 1024": (mlp(), torch.randn(1024, 30, generator=gen), 2),
    }
    jobs, n_inputs = {}, {}
    for name, (model, x, n_classes) in cases.items():
        target = torch.randint(0, n_classes, (len(x),), generator=gen).to(device)
        jobs[name], n_inputs[name] = workload(model.to(device), x.to(device), target)

    times = {(name, who): [] for name, fns in jobs.items() for who in fns}
    for name, fns in jobs.items():  # one workload at a time, so that the CNN's memory traffic
        for fn in fns.values():  # does not land on the MLP's timings; warm-up first
            fn()
        for _ in range(args.repeats):
            for who, fn in fns.items():
                times[name, who].append(timed(fn, device))

    med = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats; medians in ms")  # fmt: skip
    header = f"{'model, batch':<18} {'inputs':>7} {'ins+del':>9} {'bare fwd':>9} {'ours/bare':>10}"
    print(header)
    print("-" * len(header))
    for name in jobs:
        ours, bare = med[name, "ours"], med[name, "bare"]
        print(f"{name:<18} {n_inputs[name]:>7} {ours:>9.2f} {bare:>9.2f} {ours / bare:>10.2f}")
    if importlib.util.find_spec("quantus") is None:
        print("quantus is not installed: the Quantus comparison is skipped")
    else:
        print("quantus is installed, but no like-for-like Quantus workload is defined here yet")


if __name__ == "__main__":
    main()
