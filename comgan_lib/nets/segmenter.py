"""A U-Net segmenter: encoder of [conv3×3 → BN → ReLU]×2 stages with max-pooling, decoder of
nearest-×2 upsampling + conv3×3 → BN → ReLU, skip concatenation and the same double conv; a 1×1
convolution to one channel of mask *logits*. The released code's S uses widths 64 … 1024 (five
stages, 34.5 M parameters); ``width`` and ``depth`` scale it down for a CPU.

Used as the stage-2 segmenter S and, trained on ground-truth masks, as the *oracle* that measures
stage-1 mask fidelity on the embedded dataset (an evaluation instrument, never used in training).

``input_norm=True`` standardises each image per channel (zero mean, unit deviation) before the
first convolution, so S reads the same input for an image and for any per-channel contrast and
brightness change of it: a guard against a generator whose images are paler than the real ones.
"""

from __future__ import annotations

import torch
from torch import nn

from comgan_lib.nets.blocks import check_shape


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def standardise(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Each image's channels to zero mean and unit deviation (``eps`` keeps flat images finite)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


class UNet(nn.Module):
    """``UNet(width=64, depth=5)`` is the reference layout (64, 128, 256, 512, 1024 channels)."""

    def __init__(
        self, in_channels: int = 3, width: int = 64, depth: int = 5, input_norm: bool = False
    ):
        super().__init__()
        self.input_norm = input_norm
        if depth < 2:
            raise ValueError(f"U-Net depth must be at least 2, got {depth}")
        self.in_channels, self.depth = in_channels, depth
        widths = [width * 2**i for i in range(depth)]
        self.down = nn.ModuleList(
            _double_conv(c_in, c_out)
            for c_in, c_out in zip([in_channels, *widths], widths, strict=False)
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )
            for c_in, c_out in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.merge = nn.ModuleList(_double_conv(2 * c, c) for c in widths[-2::-1])
        self.out = nn.Conv2d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits [N, 1, H, W]; H and W must be divisible by 2**(depth − 1)."""
        check_shape(x, (None, self.in_channels, None, None), "segmenter input")
        if self.input_norm:
            x = standardise(x)
        if x.shape[-1] % 2 ** (self.depth - 1) or x.shape[-2] % 2 ** (self.depth - 1):
            size, factor = tuple(x.shape[-2:]), 2 ** (self.depth - 1)
            raise ValueError(f"segmenter input {size} must be divisible by {factor}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([skip, up(x)], dim=1))
        return self.out(x)
