"""Building blocks shared by the generators (after the SimpleGAN / FineGAN design).

Every block ends in a GLU, which halves the channels: a convolution producing ``2·out`` channels,
batch norm, then ``a * sigmoid(b)``. Convolutions carry no bias (batch norm follows each one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GLU(nn.Module):
    """Gated linear unit over channels: ``x[:, :C/2] * sigmoid(x[:, C/2:])``.

    Computed by PyTorch's one-kernel ``F.glu`` (forward bit-identical to the two-op form, backward
    equal up to rounding, about twice as fast on a CPU); ``fused = False`` on an instance uses the
    two-op form (the benchmark's "legacy" step)."""

    fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ValueError(f"GLU needs an even number of channels, got {x.shape[1]}")
        if self.fused:
            return F.glu(x, dim=1)
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False)


def same_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """conv3x3 → BN → GLU, same spatial size."""
    return nn.Sequential(conv3x3(in_ch, 2 * out_ch), nn.BatchNorm2d(2 * out_ch), GLU())


def up_block(in_ch: int, out_ch: int, scale: int = 2) -> nn.Sequential:
    """Nearest-neighbour upsampling by ``scale``, then a same block."""
    return nn.Sequential(
        nn.Upsample(scale_factor=scale, mode="nearest"), *same_block(in_ch, out_ch)
    )


class ResBlock(nn.Module):
    """[conv3x3 → BN → GLU → conv3x3 → BN] + identity, no activation after the sum."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            *same_block(channels, channels), conv3x3(channels, channels), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ImageHead(nn.Sequential):
    """conv3x3 → tanh: an RGB image in [-1, 1]."""

    def __init__(self, in_ch: int):
        super().__init__(conv3x3(in_ch, 3), nn.Tanh())


class MaskLogitHead(nn.Sequential):
    """conv3x3 to one channel of *logits*; the mask is their sigmoid (losses use the logits)."""

    def __init__(self, in_ch: int):
        super().__init__(conv3x3(in_ch, 1))


def check_shape(x: torch.Tensor, expected: tuple, what: str) -> torch.Tensor:
    """Fail early, naming the tensor, when a module boundary sees an unexpected shape.

    ``expected`` may hold ``None`` for dimensions that are free (the batch).
    """
    ok = x.dim() == len(expected) and all(
        e is None or e == s for e, s in zip(expected, x.shape, strict=False)
    )
    if not ok:
        want = tuple("N" if e is None else e for e in expected)
        raise ValueError(f"{what}: expected shape {want}, got {tuple(x.shape)}")
    return x
