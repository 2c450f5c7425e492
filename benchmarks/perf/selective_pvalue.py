"""Speed of exact selective p-values (parametric homotopy) for CAM salient regions.

Run: ``python -m salbench.perf.selective_pvalue [--images N] [--sizes 16 32 64] [--threads T]``.

The CNN of Miwa, Duy & Takeuchi (ICLR 2023): conv-conv-maxpool-conv-conv-upsample-GAP-linear
with 4 channels and PyTorch's default random initialisation (seed 0); being fully
convolutional, the same weights serve every image size. For each size d (n = d² pixels) the
"mean" test (one reference image; region: the min-max normalised CAM above 0.5, which selects
7–18% of the pixels here) is run on null images:

* seconds per exact parametric p-value, batched (all images in one call; wall clock and process
  CPU time) and one image per call (wall clock; its search range is then cut into segments
  scanned side by side);
* steps (propagations along the line) per p-value;
* CPU time of one propagation step (the batch of lines one propagation carries, through the
  network with their intervals and the region event) over that of a plain forward pass of the
  same batch of images.

Only ratios within one run are meaningful; the absolute times depend on the machine and its load.
For scale: the authors' lab package needs 1.4–3.7 s per p-value on a 16×16 CAM-CNN of 4–8
channels on the development machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from salbench.metrics.selective import LinePropagator, cam_saliency, salient_region_test
from salbench.metrics.selective.region_test import _capacity, _RegionEvent
from torch import nn


def paper_cnn(channels: int = 4) -> nn.Sequential:
    """conv-conv-maxpool-conv-conv-upsample-GAP-linear (Miwa et al.'s classifier), one logit."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1),
    )  # fmt: skip


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call (CPU time is steadier on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(model: nn.Sequential, size: int, images: int, singles: int, repeats: int) -> dict[str, float]:
    cam = cam_saliency(model, 0, (1, size, size)).double()
    gen = torch.Generator().manual_seed(size)
    x = torch.randn(images, 1, size, size, generator=gen, dtype=torch.float64)
    ref = torch.randn(images, 1, size, size, generator=gen, dtype=torch.float64)

    def test(rows: slice):
        return salient_region_test(cam, x[rows], x_ref=ref[rows], threshold=0.5, statistic="mean", normalize=True)

    results = test(slice(None))
    batch_wall, batch_cpu = timed(lambda: test(slice(None)))
    single_wall = statistics.mean(timed(lambda i=i: test(slice(i, i + 1)))[0] for i in range(singles))

    lines = x[: _capacity(x)]  # the batch one propagation of the scan carries
    propagator, event = LinePropagator(cam), _RegionEvent(0.5, True)
    direction = torch.randn_like(lines) / size

    def step():
        value, slope, _, _ = propagator(lines, direction)
        event(value.flatten(1), slope.flatten(1))

    def forward():
        with torch.no_grad():
            cam(lines)

    step(), forward()
    t_step = statistics.median(timed(step)[1] for _ in range(repeats))
    t_forward = statistics.median(timed(forward)[1] for _ in range(repeats))
    return {
        "batched": batch_wall / images,
        "batched_cpu": batch_cpu / images,
        "single": single_wall,
        "steps": statistics.mean(r.diagnostics.steps for r in results),
        "lines": lines.shape[0],
        "step_ratio": t_step / t_forward,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[64, 32, 8], help="null images per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="image sides d (n = d²)")
    parser.add_argument("--singles", type=int, default=2, help="images also tested one per call")
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats of one step and one forward pass")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: the tensors are small)")
    args = parser.parse_args()
    if len(args.images) != len(args.sizes):
        parser.error("give one --images count per --sizes entry")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = paper_cnn().eval()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); 'mean' test, normalised CAM > 0.5, "
        f"null images; step/fwd: CPU time of one propagation step over one forward pass of the same batch "
        f"(median of {args.repeats})"
    )
    header = (
        f"{'n':>6} {'images':>7} {'s/p batched':>12} {'cpu s/p':>8} {'s/p single':>11} {'steps/p':>8} "
        f"{'batch':>6} {'step/fwd':>9}"
    )
    print(header)
    print("-" * len(header))
    for size, images in zip(args.sizes, args.images):
        m = measure(model, size, images, args.singles, args.repeats)
        print(
            f"{size * size:>6} {images:>7} {m['batched']:>12.4f} {m['batched_cpu']:>8.4f} {m['single']:>11.4f} "
            f"{m['steps']:>8.0f} {m['lines']:>6} {m['step_ratio']:>9.1f}"
        )
        if size == 16:
            low, high = 1.4 / m["batched"], 3.7 / m["batched"]
            print(f"{'':>6} throughput vs the authors' lab package (1.4–3.7 s per p-value at n = 256): {low:.0f}–{high:.0f}×")


if __name__ == "__main__":
    main()
