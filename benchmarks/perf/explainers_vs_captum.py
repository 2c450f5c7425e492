"""Speed of salbench's gradient-family and surrogate explainers against Captum's, on the same work.

Run: ``python -m salbench.perf.explainers_vs_captum [--model small_cnn|resnet18] [--repeats R] [--device cpu|cuda]
[--chunk ROWS] [--cpu-time]`` (``--cpu-time``: CPU time of the process instead of wall-clock,
steadier on a shared machine; run it with one thread).

Two workloads (:data:`WORKLOADS`): ``small_cnn``, a small CNN on 1×28×28 inputs, a batch of 32,
IG with 50 Gauss–Legendre steps and SmoothGrad with 50 noise copies; ``resnet18``,
torchvision's ResNet-18 layout (:class:`salbench.models.resnet.ResNet`, random weights) on
3×224×224 inputs, a batch of 16, IG with 32 steps and SmoothGrad with 16 copies. Each method is
evaluated in one batched forward/backward pass of batch × steps rows by both libraries, or for
IG and SmoothGrad with ``--chunk`` in passes of at most that many rows by all three (ours:
``internal_batch_size`` / ``batch_size``; Captum: ``internal_batch_size`` /
``nt_samples_batch_size``), which bounds the memory (the 512 rows of the ResNet-18 IG workload
need ~10 GB of activations in one pass). Both
workloads also time guided backpropagation and gradient SHAP (``samples`` draws, σ = 0.1, a
background of 8 inputs); ``small_cnn`` also DeepLIFT and LRP (ε = 1e-9 everywhere, Captum's
default rules) on the same CNN with average pooling and the flattening done in ``forward``
(:func:`small_avgpool_cnn`: our DeepLIFT has no max-pooling rule, Captum's LRP no rule for
``nn.Flatten``), and KernelSHAP and LIME (50 perturbations of 4×4 patches per sample; Captum
evaluates the 50 of one sample per forward pass, our LIME too, our KernelSHAP 8 of every sample). Ours, Captum's and the bare passes the method needs (forward+backward of the same
rows; forward only for the surrogates) are timed in interleaved repeats (so drifts in machine
load hit all three alike); the table gives medians, ours/Captum and ours/bare. Only ratios
within one run are meaningful.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Callable

import torch
from captum.attr import (
    LRP,
    DeepLift,
    GradientShap,
    GuidedBackprop,
    IntegratedGradients,
    KernelShap,
    Lime,
    NoiseTunnel,
    Saliency,
)
from salbench import explainers, models
from salbench.explainers.surrogate import patch_mask
from salbench.perf.timing import timed
from torch import nn

NOISE = 0.15
SHAP_STDEV = 0.1
SURROGATE_SAMPLES = 50
PATCH = (4, 4)
Workload = dict[str, Callable[[], torch.Tensor]]  # "ours" / "captum" / "bare" → a timed call


@dataclasses.dataclass(frozen=True)
class Setting:
    """A model and its inputs, and the work per method."""

    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    classes: int
    batch: int
    steps: int  # IG steps
    samples: int  # SmoothGrad noise copies, gradient SHAP draws
    layered: Callable[[], nn.Module] | None = None  # the model of DeepLIFT, LRP and the surrogates, if they run


def small_cnn() -> nn.Module:
    """Three conv blocks, global average pooling, a linear layer: MNIST-sized, 10 classes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    ).eval()  # fmt: skip


class _FlattenInForward(nn.Sequential):
    """Sequential that flattens the input of its last module in ``forward`` (no ``nn.Flatten`` module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self[:-1]:
            x = module(x)
        return self[-1](x.flatten(1))


def small_avgpool_cnn() -> nn.Module:
    """:func:`small_cnn` with average instead of max pooling and the flattening in ``forward``."""
    torch.manual_seed(0)
    return _FlattenInForward(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Linear(64, 10),
    ).eval()  # fmt: skip


def resnet18() -> nn.Module:
    """torchvision's ResNet-18 layout, random weights, 1000 classes."""
    torch.manual_seed(0)
    return models.build("resnet", {}, (3, 224, 224), 1000).eval()


WORKLOADS = {
    "small_cnn": Setting(small_cnn, (1, 28, 28), 10, batch=32, steps=50, samples=50, layered=small_avgpool_cnn),
    "resnet18": Setting(resnet18, (3, 224, 224), 1000, batch=16, steps=32, samples=16),
}


def bare_pass(model: nn.Module, rows: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One forward and backward pass of the target logits of ``rows``: the floor of both methods."""
    rows = rows.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(rows).gather(1, target[:, None]).sum(), rows)
    return grad


def bare_passes(model: nn.Module, rows: torch.Tensor, target: torch.Tensor, chunk: int | None) -> None:
    """:func:`bare_pass` over ``rows`` in passes of at most ``chunk`` rows (None: one pass)."""
    per_pass = chunk or len(rows)
    for start in range(0, len(rows), per_pass):
        bare_pass(model, rows[start : start + per_pass], target[start : start + per_pass])


def bare_forward(model: nn.Module, rows: torch.Tensor, chunk: int) -> None:
    """Forward passes of ``rows``, ``chunk`` rows at a time: the floor of the perturbation methods."""
    with torch.no_grad():
        for start in range(0, len(rows), chunk):
            model(rows[start : start + chunk])


def workloads(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, samples: int, chunk: int | None = None
) -> dict[str, Workload]:
    """For each method: ours, Captum's and the bare pass over the same number of rows (IG and
    SmoothGrad in passes of at most ``chunk`` rows; None: all)."""
    copies = max(1, chunk // len(x)) if chunk else None  # SmoothGrad's noise copies per pass
    ours_ig = explainers.get("integrated_gradients", steps=steps, method="gausslegendre", internal_batch_size=chunk)
    ours_sg = explainers.get("smoothgrad", n_samples=samples, noise=NOISE, seed=0, batch_size=copies)
    ours_gb = explainers.get("guided_backprop")
    background = x[:8].flip(0).clone()  # 8 inputs as the baselines' distribution
    ours_shap = explainers.get("gradient_shap", stdev=SHAP_STDEV, n_samples=samples, background=background)
    stdev = NOISE * (x.max() - x.min()).item()  # Captum takes one σ for the batch: the same work
    dims = (1,) * (x.dim() - 1)
    sg_rows = len(x) * copies if copies else None
    return {
        f"integrated gradients ({steps} steps)": {
            "ours": lambda: ours_ig(model, x, target),
            "captum": lambda: IntegratedGradients(model).attribute(
                x, target=target, n_steps=steps, internal_batch_size=chunk
            ),
            "bare": lambda: bare_passes(model, x.repeat(steps, *dims), target.repeat(steps), chunk),
        },
        f"smoothgrad ({samples} samples)": {
            "ours": lambda: ours_sg(model, x, target),
            "captum": lambda: NoiseTunnel(Saliency(model)).attribute(
                x, nt_type="smoothgrad", nt_samples=samples, stdevs=stdev, target=target, abs=False,
                nt_samples_batch_size=copies,
            ),
            "bare": lambda: bare_passes(model, x.repeat(samples, *dims), target.repeat(samples), sg_rows),
        },
        "guided backprop": {
            "ours": lambda: ours_gb(model, x, target),
            "captum": lambda: GuidedBackprop(model).attribute(x, target=target),
            "bare": lambda: bare_pass(model, x, target),
        },
        f"gradient SHAP ({samples} samples)": {
            "ours": lambda: ours_shap(model, x, target),
            "captum": lambda: GradientShap(model).attribute(
                x, baselines=background, n_samples=samples, stdevs=SHAP_STDEV, target=target
            ),
            "bare": lambda: bare_pass(model, x.repeat(samples, *dims), target.repeat(samples)),
        },
    }


def layered_workloads(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, Workload]:
    """DeepLIFT, LRP, KernelSHAP and LIME: ours, Captum's and the bare passes, on a model both support."""
    ours_dl, ours_lrp = explainers.get("deeplift"), explainers.get("lrp", composite="epsilon", epsilon=1e-9)
    surrogate = dict(n_samples=SURROGATE_SAMPLES, patch=PATCH)
    ours_ks = explainers.get("kernel_shap", **surrogate)  # its default chunks: 8 coalitions of every sample per pass
    ours_lime = explainers.get("lime", perturbations_per_eval=SURROGATE_SAMPLES, **surrogate)
    mask = patch_mask(x.shape[1:], PATCH).to(x.device)
    captum_surrogate = dict(
        feature_mask=mask[None], n_samples=SURROGATE_SAMPLES, perturbations_per_eval=SURROGATE_SAMPLES
    )
    perturbed = x.repeat(SURROGATE_SAMPLES, *(1,) * (x.dim() - 1))
    return {
        "deeplift": {
            "ours": lambda: ours_dl(model, x, target),
            "captum": lambda: DeepLift(model).attribute(x, baselines=0.0, target=target),
            "bare": lambda: bare_pass(model, torch.cat([x, torch.zeros_like(x)]), target.repeat(2)),
        },
        "lrp (epsilon)": {
            "ours": lambda: ours_lrp(model, x, target),
            "captum": lambda: LRP(model).attribute(x, target=target),
            "bare": lambda: bare_pass(model, x, target),
        },
        f"kernel shap ({SURROGATE_SAMPLES} samples)": {
            "ours": lambda: ours_ks(model, x, target),
            "captum": lambda: KernelShap(model).attribute(x, target=target, **captum_surrogate),
            "bare": lambda: bare_forward(model, perturbed, SURROGATE_SAMPLES),
        },
        f"lime ({SURROGATE_SAMPLES} samples)": {
            "ours": lambda: ours_lime(model, x, target),
            "captum": lambda: Lime(model).attribute(x, target=target, **captum_surrogate),
            "bare": lambda: bare_forward(model, perturbed, SURROGATE_SAMPLES),
        },
    }




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="timed repeats of each workload (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--model", default="small_cnn", choices=sorted(WORKLOADS), help="the workload")
    parser.add_argument("--chunk", type=int, help="rows per forward/backward pass of IG and SmoothGrad, all three alike (default: all)")
    parser.add_argument("--cpu-time", action="store_true", help="on a CPU, time this process's CPU time (shared machines)")
    args = parser.parse_args()
    device = torch.device(args.device)
    setting = WORKLOADS[args.model]
    model = setting.build().to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(setting.batch, *setting.input_shape, generator=gen).to(device)
    target = torch.randint(0, setting.classes, (setting.batch,), generator=gen).to(device)

    jobs = workloads(model, x, target, setting.steps, setting.samples, args.chunk)
    if setting.layered is not None:
        jobs |= layered_workloads(setting.layered().to(device), x, target)
    ig = list(jobs.values())[0]
    gap = (ig["ours"]() - ig["captum"]()).abs().max().item()
    times: dict[tuple[str, str], list[float]] = {(m, who): [] for m, fns in jobs.items() for who in fns}
    for fns in jobs.values():  # warm-up
        for fn in fns.values():
            fn()
    for _ in range(args.repeats):
        for method, fns in jobs.items():
            for who, fn in fns.items():
                times[method, who].append(timed(fn, device, cpu_time=args.cpu_time))

    med = {key: statistics.median(values) * 1e3 for key, values in times.items()}
    print(f"{args.model}, device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {setting.batch}, "
          f"{args.repeats} interleaved repeats, IG/SmoothGrad rows per pass {args.chunk or 'all'}; medians of {'CPU' if args.cpu_time else 'wall-clock'} ms; "
          f"IG max |ours − Captum| = {gap:.2e}")  # fmt: skip
    header = f"{'method':<32} {'ours':>9} {'captum':>9} {'bare':>9} {'ours/captum':>12} {'ours/bare':>10}"
    print(header)
    print("-" * len(header))
    for method in jobs:
        ours, theirs, bare = med[method, "ours"], med[method, "captum"], med[method, "bare"]
        print(f"{method:<32} {ours:>9.1f} {theirs:>9.1f} {bare:>9.1f} {ours / theirs:>12.2f} {ours / bare:>10.2f}")


if __name__ == "__main__":
    main()
