"""The parametric scan keeps a constant number of tensors alive however many steps it takes.

Regression test. The scan used to keep each step's matching pieces as separate small tensors
until it ended; at 64×64, where a propagation carries one line segment, a scan takes thousands
of steps, and those small allocations, scattered between the propagations' large short-lived
buffers, made glibc's heap grow by up to ~1 MB per step (GBs per call). Heap growth depends on
the allocator and on the heap's layout, so the test counts what caused it instead: the tensors
alive (as the garbage collector sees them) when ``LinePropagator.tail`` is called at steps
32, 64, …, of a scan of 64 images of 16×16 (about 450 propagations). The old code's count grew
by two per step (by about 450 between step 32 and step 256); now it may not grow at all.
"""

from __future__ import annotations

import gc

import torch
from salbench.metrics.selective import LinePropagator, salient_region_test
from torch import nn


def _live_tensors() -> int:
    # issubclass(type(...)) rather than isinstance: it reads no attribute of the objects
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_scan_keeps_a_constant_number_of_tensors_alive(monkeypatch):
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(64, 1, 16, 16, generator=g, dtype=torch.float64)
    ref = torch.randn(64, 1, 16, 16, generator=g, dtype=torch.float64)
    tail = LinePropagator.tail
    calls = 0
    live: dict[int, int] = {}  # step (a power of two >= 32) -> tensors alive

    def counting_tail(self, value, slope):
        nonlocal calls
        calls += 1
        if calls >= 32 and calls & (calls - 1) == 0:
            live[calls] = _live_tensors()
        return tail(self, value, slope)

    monkeypatch.setattr(LinePropagator, "tail", counting_tail)
    init = LinePropagator.__init__

    def walking_init(self, model):  # no interval pruning: the walk alone, the longest scan
        init(self, model)
        self.bounded = False

    monkeypatch.setattr(LinePropagator, "__init__", walking_init)
    results = salient_region_test(net, x, x_ref=ref, threshold=0.0, statistic="mean")
    assert all(0 <= r.p_value <= 1 for r in results)
    assert max(live) >= 256, f"the scan took only {calls} steps; the test needs a longer one"
    assert max(live.values()) == live[32], f"tensors alive at steps {sorted(live)}: {[live[k] for k in sorted(live)]}"
