"""The image discriminator D (the released code's template): strided 4×4 convolutions with
LeakyReLU(0.2), batch norm after all but the first, widths doubling up to 8·width, until 4×4; a
3×3 convolution; then a 4×4 convolution to one real/fake *logit* per image (losses apply the
sigmoid). Weights start orthogonal as in the released code, or at PyTorch's defaults. An optional
code head classifies one-hot codes (Q_f / Q_b of Eq. 8)."""

from __future__ import annotations

import torch
from torch import nn

from comgan_lib.nets.blocks import check_shape
from comgan_lib.nets.generators import num_upsamplings


def _down(in_ch: int, out_ch: int, norm: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return layers + [nn.LeakyReLU(0.2, inplace=True)]


class ImageDiscriminator(nn.Module):
    def __init__(
        self,
        resolution: int,
        width: int = 64,
        in_channels: int = 3,
        code_dim: int = 0,
        init: str = "orthogonal",
    ):
        super().__init__()
        self.resolution, self.in_channels = resolution, in_channels
        n_down = num_upsamplings(resolution)  # as many halvings as the generator has doublings
        widths = [min(width * 2**i, 8 * width) for i in range(n_down)]
        layers = _down(in_channels, widths[0], norm=False)
        for c_in, c_out in zip(widths, widths[1:], strict=False):
            layers += _down(c_in, c_out, norm=True)
        c = widths[-1]
        layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)]
        layers += [nn.LeakyReLU(0.2, inplace=True)]
        self.trunk = nn.Sequential(*layers)
        self.real_fake = nn.Conv2d(c, 1, 4, bias=False)
        self.code_head = None
        if code_dim:
            self.code_head = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c, code_dim, 4, stride=4, bias=False),
            )
        if init == "orthogonal":
            self.apply(orthogonal_init)
        elif init != "default":  # "default": PyTorch's own initialisation of each layer
            raise ValueError(f"unknown discriminator init {init!r}; use orthogonal or default")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.in_channels, self.resolution, self.resolution), "D input")
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits, shape [N]."""
        return self.real_fake(self.features(x)).flatten()

    def classify_code(self, x: torch.Tensor) -> torch.Tensor:
        """Code logits [N, code_dim] (requires ``code_dim > 0``)."""
        if self.code_head is None:
            raise RuntimeError("this discriminator was built without a code head")
        return self.code_head(self.features(x)).flatten(1)


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights for conv/linear, N(1, 0.02) scale and zero shift for batch norm."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
