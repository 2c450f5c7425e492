"""Per-sample random streams: a sample's draws depend on (seed, its content) only."""

from __future__ import annotations

import hashlib

import pytest
import torch
from salbench.core.seeding import SampleStreams, sample_seed


def test_sample_seed_is_sha256_of_the_seed_and_the_bytes():
    sample = torch.tensor([1.5, -2.0])
    digest = hashlib.sha256(b"7" + sample.numpy().tobytes()).digest()
    assert sample_seed(7, sample) == int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
    assert sample_seed(7, sample) != sample_seed(8, sample) != sample_seed(7, sample + 1e-6)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.int64, torch.bool])
def test_sample_seed_takes_any_dtype(dtype):
    sample = torch.tensor([[1, 0], [1, 1]]).to(dtype)
    assert sample_seed(0, sample) == sample_seed(0, sample.clone()) != sample_seed(0, sample.T.contiguous())


def test_a_sample_draws_the_same_in_any_batch_order_and_size():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    streams = SampleStreams(4, x)
    first, second = streams.randn((2, 3), like=x), streams.rand((), like=x)  # successive draws continue each stream
    rows = [4, 1]
    alone = SampleStreams(4, x[rows])
    assert torch.equal(alone.randn((2, 3), like=x), first[rows]) and torch.equal(alone.rand((), like=x), second[rows])
    assert first.shape == (6, 2, 3) and second.shape == (6,) and first.dtype == x.dtype
    assert not torch.equal(first[0], first[1])  # different samples, different streams


def test_rows_draw_for_those_samples_in_order_and_repeats_continue_a_stream():
    x = torch.arange(8.0).view(4, 2)
    by_rows = SampleStreams(1, x).rand((), like=x, rows=torch.tensor([2, 0, 2]))
    one = SampleStreams(1, x[2:3]).rand((2,), like=x)[0]
    assert torch.equal(by_rows[[0, 2]], one) and by_rows[1] == SampleStreams(1, x[:1]).rand((), like=x)[0]
    assert SampleStreams(1, x).rand((3,), like=x, rows=torch.tensor([], dtype=torch.long)).shape == (0, 3)


def test_identical_samples_draw_identically_and_integer_batches_draw_floats():
    x = torch.tensor([[3, 1], [3, 1]])
    draws = SampleStreams(0, x).rand((5,), like=x)
    assert torch.equal(draws[0], draws[1]) and draws.dtype == torch.get_default_dtype()
