"""Per-sample random streams: every random draw depends on (seed, the sample), never on its batch.

A component sees only the batch x, so a sample's identity is its content: :func:`sample_seed`
hashes the seed with the sample's bytes, and :class:`SampleStreams` holds one CPU
``torch.Generator`` per sample of a batch, seeded that way. A draw is made sample by sample from
its own generator, in the batch's dtype, then moved to the batch's device, so the value a sample
gets is the same whatever the other samples of its batch, their order, the batch size or the
device. Identical samples get identical draws (they are the same sample). Successive draws of
one :class:`SampleStreams` continue each sample's stream.

Example:
    >>> import torch
    >>> x = torch.arange(12.0).view(3, 4)
    >>> alone = SampleStreams(7, x[1:2]).randn((4,), like=x)
    >>> together = SampleStreams(7, x).randn((4,), like=x)
    >>> bool(torch.equal(alone[0], together[1]))
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["sample_seed", "SampleStreams"]


def sample_seed(seed: int, sample: Tensor) -> int:
    """A 63-bit seed from ``seed`` and the bytes of one ``sample`` (any dtype): SHA-256, first 8 bytes.

    >>> sample_seed(0, torch.zeros(3)) == sample_seed(0, torch.zeros(3)) != sample_seed(1, torch.zeros(3))
    True
    """
    data = sample.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    digest = hashlib.sha256(str(seed).encode() + data).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SampleStreams:
    """One CPU generator per sample of ``x`` (rows of its first dimension), seeded by :func:`sample_seed`.

    Args:
        seed: the component's seed (an int >= 0).
        x: the batch whose samples identify the streams.
    """

    def __init__(self, seed: int, x: Tensor):
        self.generators = [torch.Generator().manual_seed(sample_seed(seed, row)) for row in x]

    def __len__(self) -> int:
        return len(self.generators)

    def rand(self, shape: tuple[int, ...], *, like: Tensor, rows: Tensor | None = None) -> Tensor:
        """U[0, 1) draws of ``shape`` per sample, stacked to (N, *shape) in ``like``'s dtype and device.

        ``rows`` (1-D indices) draws only for those samples, in that order: (len(rows), *shape).
        """
        return self._draw(torch.rand, shape, like, rows)

    def randn(self, shape: tuple[int, ...], *, like: Tensor, rows: Tensor | None = None) -> Tensor:
        """Standard-normal draws of ``shape`` per sample, as :meth:`rand`."""
        return self._draw(torch.randn, shape, like, rows)

    def _draw(self, sampler: Callable[..., Tensor], shape: tuple[int, ...], like: Tensor, rows: Tensor | None) -> Tensor:
        dtype = like.dtype if like.dtype.is_floating_point else torch.get_default_dtype()
        chosen = self.generators if rows is None else [self.generators[int(i)] for i in rows]
        if not chosen:
            return torch.empty((0, *shape), dtype=dtype, device=like.device)
        return torch.stack([sampler(tuple(shape), generator=g, dtype=dtype) for g in chosen]).to(like.device)
