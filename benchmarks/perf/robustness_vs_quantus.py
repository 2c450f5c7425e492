"""Speed of the random-perturbation robustness metrics and the sanity checks against Quantus.

Run: ``python -m salbench.perf.robustness_vs_quantus [--n N] [--samples S] [--repeats R] [--device cpu|cuda]``.

Each of our metrics that Quantus also has is timed beside its Quantus counterpart on the same
model, inputs, precomputed attributions, explainer and number of draws: a small CNN on N
1×28×28 inputs (10 classes) and an MLP on N × 30 features (2 classes), the explainer our
``gradient`` for both (Quantus gets it as ``explain_func``, converting numpy ↔ torch, so the
explainer costs the same and the ratio measures what each library adds around it). Pairs:
``max_sensitivity`` / ``MaxSensitivity``, ``avg_sensitivity`` / ``AvgSensitivity``,
``local_lipschitz`` / ``LocalLipschitzEstimate`` (S draws each), ``relative_stability`` (RIS,
RRS and ROS from one set of S draws) / ``RelativeInputStability`` + ``RelativeRepresentationStability``
+ ``RelativeOutputStability`` (three calls, S draws each: Quantus computes them separately),
``continuity`` / ``Continuity`` (28 translations, the CNN only: Quantus's is for images),
``parameter_randomisation`` / ``MPRT`` (cascading, top-down, Spearman) and ``random_logit`` /
``RandomLogit`` (Spearman for both, not Quantus's default SSIM). Quantus runs with
``batch_size=N`` (one batch, as ours). The two are timed in interleaved repeats (ours, then
Quantus) so that drifts in machine load hit both alike; on the CPU the clock is this process's
CPU time. The table gives medians and ours/Quantus (target ≤ 1.0). Only ratios within one run
are meaningful.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from collections.abc import Callable

import numpy as np
import torch
from salbench import explainers, metrics
from salbench.metrics.base import Case
from salbench.perf.insertion_deletion import mlp, small_cnn
from salbench.perf.timing import timed
from torch import nn


def pairs(model: nn.Module, x: torch.Tensor, samples: int, device: torch.device) -> dict[str, tuple[Callable, Callable]]:
    """(ours, Quantus) callables per metric on one model and batch."""
    import quantus

    gradient = explainers.get("gradient")
    with torch.no_grad():
        target = model(x).argmax(1)
    attr = gradient(model, x, target).detach()
    case = Case(model=model, explainer=gradient, x=x, target=target, attr=attr)
    n_classes = model(x[:1]).shape[1]
    names = [name for name, _ in model.named_modules()]
    last_linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    representation = names[names.index(last_linear) - 1]  # its output is the input of the last Linear (our "auto")

    def explain(model, inputs, targets, **kwargs):
        inputs = torch.as_tensor(inputs, device=device)
        return gradient(model, inputs, torch.as_tensor(targets, device=device)).cpu().numpy()

    inputs = {
        "model": model, "x_batch": x.cpu().numpy(), "y_batch": target.cpu().numpy(), "a_batch": attr.cpu().numpy(),
        "explain_func": explain, "device": str(device), "batch_size": len(x),
    }  # fmt: skip
    quiet = {"disable_warnings": True}
    draws = {"nr_samples": samples, **quiet}
    spearman = quantus.similarity_func.correlation_spearman

    def ours(name: str, **params) -> Callable:
        metric = metrics.get(name, **params)
        return lambda: metric.evaluate(case)

    def theirs(*built) -> Callable:
        return lambda: [metric(**inputs) for metric in built]

    jobs = {
        "max_sensitivity": (ours("max_sensitivity", n_samples=samples), theirs(quantus.MaxSensitivity(lower_bound=0.02, **draws))),
        "avg_sensitivity": (ours("avg_sensitivity", n_samples=samples), theirs(quantus.AvgSensitivity(lower_bound=0.02, **draws))),
        "local_lipschitz": (ours("local_lipschitz", n_samples=samples), theirs(quantus.LocalLipschitzEstimate(**draws))),
        "relative_stability": (ours("relative_stability", n_samples=samples), theirs(
            quantus.RelativeInputStability(**draws),
            quantus.RelativeRepresentationStability(layer_names=[representation], **draws),
            quantus.RelativeOutputStability(**draws),
        )),
        "parameter_randomisation": (ours("parameter_randomisation"), theirs(
            quantus.MPRT(similarity_func=spearman, return_last_correlation=True, **quiet)
        )),
        "random_logit": (ours("random_logit"), theirs(
            quantus.RandomLogit(similarity_func=spearman, num_classes=n_classes, **quiet)
        )),
    }  # fmt: skip
    if x.dim() == 4:
        jobs["continuity"] = (ours("continuity", n_steps=28), theirs(quantus.Continuity(nr_steps=28, **quiet)))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="inputs per batch")
    parser.add_argument("--samples", type=int, default=10, help="random draws per input (S)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each pair (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    np.random.seed(0)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    workloads = {
        f"CNN 1×28×28, {args.n}": (small_cnn(), torch.rand(args.n, 1, 28, 28, generator=gen)),
        f"MLP 30, {args.n}": (mlp(), torch.randn(args.n, 30, generator=gen)),
    }
    rows = []
    for workload, (model, x) in workloads.items():
        for name, (ours, theirs) in pairs(model.to(device), x.to(device), args.samples, device).items():
            ours(), theirs()  # warm-up
            times = {"ours": [], "quantus": []}
            for _ in range(args.repeats):
                times["ours"].append(timed(ours, device, cpu_time=True))
                times["quantus"].append(timed(theirs, device, cpu_time=True))
            med = {who: statistics.median(t) * 1e3 for who, t in times.items()}
            rows.append((workload, name, med["ours"], med["quantus"]))

    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), S = {args.samples}, "
          f"{args.repeats} interleaved repeats; medians in ms")  # fmt: skip
    header = f"{'workload':<18} {'metric':<24} {'ours':>9} {'quantus':>9} {'ours/quantus':>13}"
    print(header)
    print("-" * len(header))
    for workload, name, ours, theirs in rows:
        print(f"{workload:<18} {name:<24} {ours:>9.1f} {theirs:>9.1f} {ours / theirs:>13.2f}")


if __name__ == "__main__":
    main()
