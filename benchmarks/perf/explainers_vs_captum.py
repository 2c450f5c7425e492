"""Speed of salbench's integrated gradients and SmoothGrad against Captum's, on the same work.

Run: ``python -m salbench.perf.explainers_vs_captum [--repeats R] [--device cpu|cuda]``.

A small CNN on 1×28×28 inputs, a batch of 32; IG with 50 Gauss–Legendre steps and SmoothGrad
with 50 noise copies, each evaluated in one batched forward/backward pass of 32 × 50 rows by
both libraries. Ours, Captum's and the bare forward+backward pass of the same 1600 rows are
timed in interleaved repeats (so drifts in machine load hit all three alike); the table gives
medians, ours/Captum and ours/bare. Only ratios within one run are meaningful.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from salbench import explainers
from salbench.perf.timing import timed
from torch import nn

BATCH, STEPS, SAMPLES, NOISE = 32, 50, 50, 0.15
Workload = dict[str, Callable[[], torch.Tensor]]  # "ours" / "captum" / "bare" → a timed call


def small_cnn() -> nn.Module:
    """Three conv blocks, global average pooling, a linear layer: MNIST-sized, 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


def bare_pass(model: nn.Module, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One forward and backward pass of the target logits of ``rows``: the floor of both methods."""
    rows = rows.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(rows).gather(1, target[:, None]).sum(), rows)
    return grad




def workloads(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, Workload]:
    """For each method: ours, Captum's and the bare pass over the same number of rows."""
    ours_ig = explainers.get("integrated_gradients", steps=STEPS, method="gausslegendre")
    ours_sg = explainers.get("smoothgrad", n_samples=SAMPLES, noise=NOISE, seed=0)
    stdev = NOISE * (x.max() - x.min()).item()  # Captum takes one σ for the batch: the same work
    rows = x.repeat(STEPS, 1, 1, 1)
    rows_target = target.repeat(STEPS)
    return {
        f"integrated gradients ({STEPS} steps)": {
            "ours": lambda: ours_ig(model, x, target),
            "captum": lambda: IntegratedGradients(model).attribute(x, target=target, n_steps=STEPS),
            "bare": lambda: bare_pass(model, rows, rows_target),
        },
        f"smoothgrad ({SAMPLES} samples)": {
            "ours": lambda: ours_sg(model, x, target),
            "captum": lambda: NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=stdev, target=target, abs=False
            ),
            "bare": lambda: bare_pass(model, rows, rows_target),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed repeats of each workload (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = small_cnn().to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, 28, 28, generator=gen).to(device)
    target = torch.randint(0, 10, (BATCH,), generator=gen).to(device)

    jobs = workloads(model, x, target)
    ig = list(jobs.values())[0]
    gap = (ig["ours"]() - ig["captum"]()).abs().max().item()
    times: dict[tuple[str, str], list[float]] = {(m, who): [] for m, fns in jobs.items() for who in fns}
    for fns in jobs.values():  # warm-up
        for fn in fns.values():
            fn()
    for _ in range(args.repeats):
        for method, fns in jobs.items():
            for who, fn in fns.items():
                times[method, who].append(timed(fn, device))

    med = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, "
          f"{args.repeats} interleaved repeats; medians in ms; IG max |ours − Captum| = {gap:.2e}")  # fmt: skip
    header = f"{'method':<28} {'ours':>9} {'captum':>9} {'bare f+b':>9} {'ours/captum':>12} {'ours/bare':>10}"
    print(header)
    print("-" * len(header))
    for method in jobs:
        ours, theirs, bare = med[method, "ours"], med[method, "captum"], med[method, "bare"]
        print(f"{method:<28} {ours:>9.1f} {theirs:>9.1f} {bare:>9.1f} {ours / theirs:>12.2f} {ours / bare:>10.2f}")


if __name__ == "__main__":
    main()
