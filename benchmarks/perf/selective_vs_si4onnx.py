"""Selective p-values: salbench against si4onnx (Miwa et al.'s lab package) on the same ONNX models and images.

Run: ``python -m salbench.perf.selective_vs_si4onnx --si4onnx-python PATH [--sizes 16 64] [--images 8]``.

si4onnx needs numpy < 2, so it lives in its own environment (PATH is that environment's
python, e.g. made with ``python -m venv si4env && si4env/bin/pip install torch 'numpy<2'
si4onnx``); this script runs itself there as a worker (``--worker``), importing only torch,
numpy, onnx and si4onnx.

For each image side d (n = d² pixels): a small U-Net-style score-map network (conv-ReLU,
max-pool, conv-ReLU, transposed-convolution upsampling, skip concatenation, 1×1 conv, random weights, seed 0),
exported to ONNX; null images X ~ N(0, I); the "back" test of the region {min-max normalised
score > 0.5}, parametric mode. salbench loads the same ONNX file
(:func:`salbench.core.onnx_model.load_onnx`) and uses si4onnx's convention
(``alternative="two-sided"``, 2·min(F, 1 − F)). Printed per size: seconds per p-value of
si4onnx (it tests one image per call) and of salbench one image per call and all images in one
call (batched along lines and images), the ratios, and the largest difference between the two
packages' p-values (a check that they test the same thing).

Only ratios within one run are meaningful; absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _worker(model_path: str, images_path: str) -> None:
    """si4onnx side (its own environment): seconds and p-value per image, as JSON on stdout."""
    import numpy as np
    import onnx
    import si4onnx
    import torch
    from si4onnx import BackMeanDiff

    torch.set_num_threads(1)
    images = np.load(images_path)
    model = si4onnx.load(model=onnx.load(model_path), hypothesis=BackMeanDiff(threshold=0.5, use_norm=True), seed=0)
    out = []
    for image in images:
        x = torch.from_numpy(image[None]).double()
        start = time.perf_counter()
        result = model.inference(x, var=1.0, inference_mode="parametric")
        out.append({"seconds": time.perf_counter() - start, "p_value": float(result.p_value)})
    print(json.dumps(out))


def _network(torch, nn):
    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
            self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 4, 2, stride=2))
            self.head = nn.Conv2d(8, 1, 1)

        def forward(self, x):
            skip = self.down(x)
            return self.head(torch.cat([skip, self.bottom(skip)], 1))

    torch.manual_seed(0)
    return UNet().eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--si4onnx-python", required=True, help="python of an environment with si4onnx installed")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64], help="image sides d (n = d²)")
    parser.add_argument("--images", type=int, default=8, help="null images per size")
    args = parser.parse_args()

    import io

    import numpy as np
    import torch
    from salbench.core.onnx_model import load_onnx
    from salbench.metrics.selective import salient_region_test
    from torch import nn

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; U-Net score map, 'back' test, normalised score > 0.5, parametric")
    print(f"{'n':>6} {'images':>7} {'si4onnx s/p':>12} {'ours single':>12} {'ratio':>7} {'ours batched':>13} {'ratio':>7} {'max |Δp|':>9}")
    for side in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            buffer = io.BytesIO()
            torch.onnx.export(_network(torch, nn), torch.zeros(1, 1, side, side), buffer, dynamo=False)
            model_path, images_path = Path(tmp) / "unet.onnx", Path(tmp) / "images.npy"
            model_path.write_bytes(buffer.getvalue())
            images = torch.randn(args.images, 1, side, side, generator=torch.Generator().manual_seed(side), dtype=torch.float64)
            np.save(images_path, images.numpy())
            theirs = json.loads(subprocess.run(
                [args.si4onnx_python, __file__, "--worker", str(model_path), str(images_path)],
                capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1])  # fmt: skip
            ours_model = load_onnx(model_path).double()
            ours, seconds = [], []
            for image in images:
                start = time.perf_counter()
                (result,) = salient_region_test(ours_model, image[None], threshold=0.5, normalize=True, statistic="back",
                                                alternative="two-sided")  # fmt: skip
                seconds.append(time.perf_counter() - start)
                ours.append(result.p_value)
            start = time.perf_counter()
            batch = salient_region_test(ours_model, images, threshold=0.5, normalize=True, statistic="back", alternative="two-sided")
            batched = (time.perf_counter() - start) / len(images)
        assert all(abs(r.p_value - p) <= 1e-9 * max(p, 1e-300) for r, p in zip(batch, ours)), "a p-value depends on the batch"
        single, other = sum(seconds) / len(seconds), sum(t["seconds"] for t in theirs) / len(theirs)
        gap = max(abs(a - t["p_value"]) for a, t in zip(ours, theirs))
        print(f"{side * side:>6} {args.images:>7} {other:>12.4f} {single:>12.4f} {other / single:>6.1f}x "
              f"{batched:>13.4f} {other / batched:>6.1f}x {gap:>9.2e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        main()
