"""Speed of the deletion metric on a ResNet-18 at 224×224 against the bare batched forward passes it needs.

Run: ``python -m salbench.perf.deletion_resnet [--steps S] [--batch N] [--chunk B] [--repeats R] [--device cpu|cuda]``.

Workload (the issue's acceptance: ≤ 1.2×): torchvision's ResNet-18 layout
(:func:`salbench.perf.explainers_vs_captum.resnet18`, random weights, 1000 classes) on a batch of
16 random 3×224×224 images with random attributions; ``deletion`` in pixel units with a step of
⌈224·224 / S⌉ pixels, S = 20 steps, so S + 1 curve points per image, zero baseline, output the
softmax probability of the target. "ours" is ``deletion.evaluate_curve`` (ranking the pixels,
building the masked images, the forward passes, softmax, area); "bare" is only the forward
passes of the same number of images (built beforehand, not timed), in model calls of the same
size as the metric's (``--chunk``, the metric's ``batch_size``), the floor of any
implementation. Both are timed in interleaved repeats (so drifts in machine load hit both
alike), by this process's CPU time on a CPU device (steadier on a shared machine; run it with
one thread) and wall-clock on CUDA; the table gives medians and ours/bare. Only ratios within
one run are meaningful.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
from salbench import metrics
from salbench.perf.explainers_vs_captum import resnet18
from salbench.perf.insertion_deletion import bare_forwards
from salbench.perf.timing import timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="deletion steps over all pixels (default 20)")
    parser.add_argument("--batch", type=int, default=16, help="images explained (default 16)")
    parser.add_argument("--chunk", type=int, default=64, help="images per model call, ours and bare (default 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each (after one warm-up)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = resnet18().to(device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, 224, 224, generator=gen).to(device)
    attr = torch.randn(x.shape, generator=gen).to(device)
    target = torch.randint(0, 1000, (args.batch,), generator=gen).to(device)
    deletion = metrics.get("deletion", step=math.ceil(224 * 224 / args.steps), batch_size=args.chunk)
    points = deletion.evaluate_curve(model, x, attr, target)[1].shape[1]
    inputs = x.repeat_interleave(points, dim=0)  # the same count and shape; values do not matter
    jobs = {
        "ours": lambda: deletion.evaluate_curve(model, x, attr, target),
        "bare": lambda: bare_forwards(model, inputs, args.chunk),
    }
    for fn in jobs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {who: [] for who in jobs}
    for _ in range(args.repeats):
        for who, fn in jobs.items():
            times[who].append(timed(fn, device, cpu_time=True))
    ours, bare = (statistics.median(times[who]) for who in ("ours", "bare"))
    print(f"ResNet-18 3×224×224, batch {args.batch}, deletion {args.steps} steps ({points} curve points, "
          f"{len(inputs)} images in calls of {args.chunk}); device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.repeats} interleaved repeats; medians in s")  # fmt: skip
    print(f"{'deletion':>10} {'bare fwd':>10} {'ours/bare':>10}")
    print(f"{ours:>10.2f} {bare:>10.2f} {ours / bare:>10.2f}")


if __name__ == "__main__":
    main()
