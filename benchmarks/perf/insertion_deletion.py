"""Speed of the deletion metric against Quantus's PixelFlipping and against the bare forward passes it cannot avoid.

Run: ``python -m salbench.perf.insertion_deletion [--repeats R] [--device cpu|cuda] [--only CNN MLP] [--threads T]``.

Workloads (deletion curves towards a zero baseline, softmax probability of the target, with the
metric's default chunking, ``batch_size=None``):

- images, side by side with Quantus's ``PixelFlipping`` (``perturb_baseline="black"``,
  ``normalise=False``, softmax, ``batch_size`` = the batch, curves without its AUC helper):
  a small CNN on 64 1×28×28 images (28 steps of 28 pixels, the setting of issue 16), and a
  small torchvision-layout ResNet (``salbench.models.resnet``, blocks (1, 1, 1), widths
  (16, 32, 64), ImageNet stem) on 16 3×64×64 and 8 3×128×128 images (48 steps of 256 and
  1024 elements: Quantus needs a step that divides H·W). Quantus
  perturbs single elements, so ours runs with ``unit="feature"`` and ``step`` = Quantus's
  ``features_in_step``; ours scores one more curve point (c_0 = 0, the unperturbed input) than
  Quantus's ⌈F / step⌉, i.e. does 1/28 or 1/48 more forward passes;
- a 30-feature MLP (WDBC-sized) on batches of 32 and 1024 (step 1, 31 points), where the
  forward pass is as cheap as the metric's fixed tensor operations, so ours/bare measures the
  overhead of a call of the metric (by default a model call holds at least 32 Ki elements, so
  the 992 inputs of the batch of 32 go in one call: the fastest in absolute time, and the
  largest ratio, since the bare pass is then one call too).

"bare" is only the forward passes of the very inputs ours scores, in the same model calls
(recorded beforehand, not timed; their values matter: a CNN runs slower on inputs with many
zeros than on random ones). Workloads are timed one at a time, ours / bare / Quantus
interleaved within each repeat so that drifts in machine load hit all alike, on CPU in process
CPU time (steadier than wall-clock on a shared machine; one torch thread by default); the table gives
medians in ms, the inputs per model call ("rows/call") and the ratios (targets: ours/Quantus ≤ 1.0, ours/bare ≤ 1.2 on images and ≤ 1.5
on the MLP). Only ratios within one run are meaningful. Without Quantus installed its columns
are skipped and the run says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import statistics
import warnings
from collections.abc import Callable

import torch
from salbench import metrics
from salbench.metrics.insertion_deletion import Deletion
from salbench.models.resnet import ResNet
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


def small_resnet(side: int) -> nn.Module:
    """A three-stage ResNet with torchvision's layout and ImageNet stem, 10 classes."""
    torch.manual_seed(0)
    return ResNet((3, side, side), 10, blocks=(1, 1, 1), widths=(16, 32, 64)).eval()


def mlp() -> nn.Module:
    """30 → 64 → 64 → 2, ReLU: a WDBC-sized tabular classifier."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)).eval()


@dataclasses.dataclass
class Workload:
    """A model, a batch and the deletion metric; ``quantus_step`` is Quantus's features_in_step (None: no Quantus run)."""

    model: nn.Module
    x: torch.Tensor
    n_classes: int
    metric: Deletion
    quantus_step: int | None


class Recorder(nn.Module):
    """The model, keeping a copy of the input of every call (to replay the same calls bare)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.clone())
        return self.model(x)


def jobs(work: Workload, device: torch.device, gen: torch.Generator) -> tuple[dict[str, Callable[[], object]], int]:
    """``ours``, ``bare`` and (where set) ``quantus`` for one workload, and the number of model inputs ours evaluates."""
    model, x = work.model.to(device), work.x.to(device)
    target = torch.randint(0, work.n_classes, (len(x),), generator=gen).to(device)
    attr = torch.randn(x.shape, generator=gen).to(device)
    recorder = Recorder(model)
    work.metric.evaluate_curve(recorder, x, attr, target)
    calls = recorder.calls  # the very inputs ours scores, in its call sizes (their values change conv speed)

    def bare() -> None:
        with torch.no_grad():
            for part in calls:
                model(part)

    fns = {"ours": lambda: work.metric.evaluate_curve(model, x, attr, target), "bare": bare}
    if work.quantus_step is not None and importlib.util.find_spec("quantus") is not None:
        fns["quantus"] = quantus_job(work, model, x, attr, target, device)
    return fns, sum(len(c) for c in calls)


def quantus_job(work: Workload, model, x, attr, target, device) -> Callable[[], object]:
    import quantus

    pixel_flipping = quantus.PixelFlipping(
        features_in_step=work.quantus_step, perturb_baseline="black", normalise=False, abs=False,
        disable_warnings=True, display_progressbar=False,
    )  # fmt: skip
    arrays = {"x_batch": x.cpu().numpy(), "y_batch": target.cpu().numpy(), "a_batch": attr.cpu().numpy()}

    def run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixel_flipping(model=model, channel_first=True, softmax=True, device=str(device), batch_size=len(x), **arrays)

    return run


def workloads(gen: torch.Generator) -> dict[str, Workload]:
    def deletion(**params) -> Deletion:
        return metrics.get("deletion", baseline=0.0, **params)

    return {
        "CNN 1×28², 64": Workload(small_cnn(), torch.rand(64, 1, 28, 28, generator=gen), 10, deletion(step=28, unit="feature"), 28),
        "ResNet 3×64², 16": Workload(small_resnet(64), torch.rand(16, 3, 64, 64, generator=gen), 10,
                                     deletion(step=256, unit="feature"), 256),
        "ResNet 3×128², 8": Workload(small_resnet(128), torch.rand(8, 3, 128, 128, generator=gen), 10,
                                     deletion(step=1024, unit="feature"), 1024),
        "MLP 30, 32": Workload(mlp(), torch.randn(32, 30, generator=gen), 2, deletion(step=1), None),
        "MLP 30, 1024": Workload(mlp(), torch.randn(1024, 30, generator=gen), 2, deletion(step=1), None),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed repeats of each workload (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--only", nargs="*", help="run only the workloads whose names start with these")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machines are shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    chosen = {k: w for k, w in workloads(gen).items() if not args.only or k.startswith(tuple(args.only))}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats; medians in ms")  # fmt: skip
    header = f"{'model, batch':<18} {'inputs':>7} {'rows/call':>9} {'ours':>9} {'bare fwd':>9} {'Quantus':>9} {'ours/bare':>10} {'ours/Q':>7}"
    print(header)
    print("-" * len(header))
    for name, work in chosen.items():  # one workload at a time, so that one's memory traffic does not land on another's
        fns, n_inputs = jobs(work, device, gen)
        for fn in fns.values():  # warm-up
            fn()
        times = {who: [] for who in fns}
        for _ in range(args.repeats):
            for who, fn in fns.items():
                times[who].append(timed(fn, device, cpu_time=True))
        med = {who: statistics.median(t) * 1e3 for who, t in times.items()}
        quantus = f"{med['quantus']:>9.1f}" if "quantus" in med else f"{'-':>9}"
        ratio = f"{med['ours'] / med['quantus']:>7.2f}" if "quantus" in med else f"{'-':>7}"
        rows = work.metric.rows_per_call(work.x)
        print(f"{name:<18} {n_inputs:>7} {rows:>9} {med['ours']:>9.1f} {med['bare']:>9.1f} {quantus} "
              f"{med['ours'] / med['bare']:>10.2f} {ratio}", flush=True)  # fmt: skip
    if importlib.util.find_spec("quantus") is None:
        print("quantus is not installed: the Quantus columns are skipped")


if __name__ == "__main__":
    main()
