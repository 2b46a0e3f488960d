"""The generators compared in the paper, all built on the SimpleGAN feature generator Φ.

- ``SimpleGAN``: Φ and an RGB head — the plain GAN baseline of Table 2.
- ``ComGAN`` (Eq. 2): one shared Φ feeds a light foreground head F, a light background head B and
  a shallow mask head M; the image is ``F ⊙ M + B ⊙ (1 − M)``.
- ``Pi1`` (Remark 1, FineGAN-like): F and M share one Φ, B has a Φ of its own: ``B(Φ_b(z))``.
- ``Pi2`` (Remark 1, PerturbGAN-like): F, B and M each have their own Φ.
- ``ComGANInfo`` and ``DSComGAN`` (Sec. 3.2): ComGAN with foreground and background codes f and b;
  DS-ComGAN also builds φ from Φ's last three activations (Eq. 5) and draws Φ's own image x̄_z.

Widths follow the released code: Φ starts at ``width`` channels at 4×4 and halves them in each
upsampling block until the image size; the heads work on Φ's last ``c`` channels
(M: c → 2c → c → 1; F and B: c → 2c, three residual blocks, 2c → c → RGB). At 128×128 with
width 512, Φ has 4,815,808 parameters and ComGAN 5,039,728, as in the released code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from comgan_lib.nets.blocks import (
    GLU,
    ImageHead,
    MaskLogitHead,
    ResBlock,
    check_shape,
    same_block,
    up_block,
)


def num_upsamplings(resolution: int) -> int:
    """Blocks needed from 4×4 to ``resolution`` (a power of two, at least 8)."""
    n = int(math.log2(resolution / 4)) if resolution >= 8 else -1
    if n < 1 or 4 * 2**n != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return n


class FeatureGenerator(nn.Module):
    """Φ: z → features. fc → BN1d → GLU gives ``width``×4×4, then nearest-×2 up blocks halving
    the channels until ``resolution``. ``forward(z, all_levels=True)`` returns every block's
    activation (the last three are the DS-ComGAN features of Eq. 5)."""

    def __init__(self, resolution: int, z_dim: int = 100, width: int = 512):
        super().__init__()
        n_up = num_upsamplings(resolution)
        if width % 2**n_up or width // 2**n_up < 4:
            raise ValueError(
                f"gen width {width} cannot be halved {n_up} times down to at least 4 channels"
                f" at resolution {resolution}; use a multiple of {4 * 2**n_up}"
            )
        self.resolution, self.z_dim, self.width = resolution, z_dim, width
        self.fc = nn.Sequential(
            nn.Linear(z_dim, width * 4 * 4 * 2, bias=False),
            nn.BatchNorm1d(width * 4 * 4 * 2),
            GLU(),
        )
        self.channels = [width // 2**i for i in range(n_up + 1)]
        self.ups = nn.ModuleList(
            up_block(c_in, c_out)
            for c_in, c_out in zip(self.channels, self.channels[1:], strict=False)
        )
        self.out_channels = self.channels[-1]

    def forward(self, z: torch.Tensor, all_levels: bool = False):
        check_shape(z, (None, self.z_dim), "feature generator input z")
        x = self.fc(z).view(z.shape[0], self.width, 4, 4)
        levels = []
        for up in self.ups:
            x = up(x)
            levels.append(x)
        check_shape(x, (z.shape[0], self.out_channels, self.resolution, self.resolution), "Φ(z)")
        return levels if all_levels else x


def mask_head(c: int) -> nn.Sequential:
    """The shallow mask network M: c → 2c → c → one channel of logits."""
    return nn.Sequential(same_block(c, 2 * c), same_block(2 * c, c), MaskLogitHead(c))


def layer_head(c: int, num_residual: int = 3) -> nn.Sequential:
    """A light foreground or background network: c → 2c, residual blocks, 2c → c → RGB."""
    return nn.Sequential(
        same_block(c, 2 * c),
        *[ResBlock(2 * c) for _ in range(num_residual)],
        same_block(2 * c, c),
        ImageHead(c),
    )


class Generator(nn.Module):
    """Common interface: ``sample_z``, ``forward(z) -> dict`` and named parameter groups."""

    kind = "generator"
    has_mask = True

    def __init__(self, resolution: int, z_dim: int, z_scale: float):
        super().__init__()
        self.resolution, self.z_dim, self.z_scale = resolution, z_dim, z_scale

    has_codes = False

    def sample_latents(self, n: int, generator: torch.Generator | None = None, device=None):
        """Every input of ``forward`` for ``n`` samples, as keyword arguments."""
        return {"z": self.sample_z(n, generator, device)}

    def sample_z(self, n: int, generator: torch.Generator | None = None, device=None):
        """z ~ N(0, 1)·z_scale (the released code uses a scale of 4)."""
        device = device or next(self.parameters()).device
        # Drawn on the CPU so that a seed gives the same z on every device.
        return (torch.randn(n, self.z_dim, generator=generator) * self.z_scale).to(device)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError

    def _check_image(self, x: torch.Tensor, what: str, channels: int = 3) -> torch.Tensor:
        return check_shape(x, (None, channels, self.resolution, self.resolution), what)

    def compose(self, fg, bg, mask_logits) -> dict[str, torch.Tensor]:
        """Assumption 1 (Eq. 1): ``x = F ⊙ M + B ⊙ (1 − M)``, with M = sigmoid(logits)."""
        self._check_image(fg, "foreground F")
        self._check_image(bg, "background B")
        self._check_image(mask_logits, "mask logits", channels=1)
        mask = torch.sigmoid(mask_logits)
        image = fg * mask + bg * (1 - mask)
        return {"image": image, "mask": mask, "mask_logits": mask_logits, "fg": fg, "bg": bg}


class SimpleGAN(Generator):
    """The baseline: Φ and an RGB head, no composition."""

    kind = "simplegan"
    has_mask = False

    def __init__(
        self, resolution: int, z_dim: int = 100, width: int = 512, z_scale: float = 4.0, **_
    ):
        super().__init__(resolution, z_dim, z_scale)
        self.phi = FeatureGenerator(resolution, z_dim, width)
        self.to_image = ImageHead(self.phi.out_channels)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self._check_image(self.to_image(self.phi(z)), "SimpleGAN image")}

    def parameter_groups(self):
        return {"trunk": list(self.phi.parameters()), "image": list(self.to_image.parameters())}


class LayeredGenerator(Generator):
    """Feature generators named in ``trunk_names`` (built in that order), then the F, B and M
    heads on their last ``c`` channels. Subclasses say which trunk feeds which head."""

    trunk_names: tuple[str, ...] = ()

    def __init__(
        self,
        resolution: int,
        z_dim: int = 100,
        width: int = 512,
        z_scale: float = 4.0,
        head_blocks: int = 3,
    ):
        super().__init__(resolution, z_dim, z_scale)
        for name in self.trunk_names:
            setattr(self, name, FeatureGenerator(resolution, z_dim, width))
        c = getattr(self, self.trunk_names[0]).out_channels
        self.fg, self.bg = layer_head(c, head_blocks), layer_head(c, head_blocks)
        self.mask = mask_head(c)

    @staticmethod
    def _params(*modules: nn.Module) -> list[nn.Parameter]:
        return [p for m in modules for p in m.parameters()]


class ComGAN(LayeredGenerator):
    """One shared Φ; F, B and M all read Φ(z) (Eq. 2)."""

    kind = "comgan"
    trunk_names = ("phi",)

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        phi = self.phi(z)
        return self.compose(self.fg(phi), self.bg(phi), self.mask(phi))

    def parameter_groups(self):
        p = self._params
        return {"trunk": p(self.phi), "mask": p(self.mask), "fg": p(self.fg), "bg": p(self.bg)}


class Pi1(LayeredGenerator):
    """FineGAN-like: F and M share Φ; B has its own feature generator, ``B(Φ_b(z))``."""

    kind = "pi1"
    trunk_names = ("phi", "phi_bg")

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        phi = self.phi(z)
        return self.compose(self.fg(phi), self.bg(self.phi_bg(z)), self.mask(phi))

    def parameter_groups(self):
        p = self._params
        return {
            "trunk": p(self.phi),
            "mask": p(self.mask),
            "fg": p(self.fg),
            "bg": p(self.phi_bg, self.bg),
        }


class Pi2(LayeredGenerator):
    """PerturbGAN-like: three independent generators for F, B and M."""

    kind = "pi2"
    trunk_names = ("phi_fg", "phi_bg", "phi_mask")

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.compose(
            self.fg(self.phi_fg(z)), self.bg(self.phi_bg(z)), self.mask(self.phi_mask(z))
        )

    def parameter_groups(self):
        p = self._params
        return {
            "mask": p(self.phi_mask, self.mask),
            "fg": p(self.phi_fg, self.fg),
            "bg": p(self.phi_bg, self.bg),
        }


def one_hot_codes(codes: torch.Tensor, num_codes: int, what: str) -> torch.Tensor:
    """Integer codes [N] or one-hot rows [N, num_codes] → float one-hot [N, num_codes]."""
    if codes.dim() == 1:
        if codes.numel() and (codes.min() < 0 or codes.max() >= num_codes):
            raise ValueError(f"{what} codes must lie in [0, {num_codes}), got {codes.tolist()}")
        return nn.functional.one_hot(codes.long(), num_codes).float()
    return check_shape(codes, (None, num_codes), f"{what} one-hot code").float()


class CodedComGAN(Generator):
    """ComGAN with the disentanglement module's codes (Sec. 3.2): ``F(φ,f)``, ``B(φ,b)``, ``M(φ)``.

    f and b are one-hot codes of size ``num_codes``, tiled over the image and concatenated in front
    of φ. Two variants, the last two rows of Table 2:

    - ``comgan_info`` (``global_features=False``): φ is Φ's last activation, as in ComGAN, and the
      training loop adds L_info (Eq. 8) through the code classifiers Q_f and Q_b.
    - ``ds_comgan`` (``global_features=True``, Eq. 5): φ concatenates Φ's last three activations,
      brought to full resolution by learned upsampling blocks (nearest ×4 / ×2 + conv), and Φ also
      draws its own image ``x̄_z`` that D judges beside the composite (Eq. 7).

    ``tied_codes=True`` sets b = f, as the released code does; the paper draws them independently.
    ``head_factor`` sets DS-ComGAN's head width (8 × the trunk's last width in the released code;
    the CPU default uses 2: the heads at full resolution dominate the step time).
    """

    has_codes = True

    def __init__(
        self,
        resolution: int,
        z_dim: int = 100,
        width: int = 512,
        z_scale: float = 4.0,
        head_blocks: int = 2,
        num_codes: int = 10,
        tied_codes: bool = False,
        global_features: bool = True,
        head_factor: int = 8,
    ):
        super().__init__(resolution, z_dim, z_scale)
        if num_codes < 1:
            raise ValueError(f"num_codes must be at least 1, got {num_codes}")
        self.num_codes, self.tied_codes = num_codes, tied_codes
        self.global_features = global_features
        self.phi = FeatureGenerator(resolution, z_dim, width)
        c = self.phi.out_channels
        if global_features:
            if len(self.phi.channels) < 4:
                raise ValueError(f"global features need resolution >= 32, got {resolution}")
            c1, c2 = self.phi.channels[-3], self.phi.channels[-2]  # 4c at R/4, 2c at R/2
            self.up_a1 = up_block(c1, c1 // 2, scale=4)
            self.up_a2 = up_block(c2, c2 // 2, scale=2)
            phi_ch, hidden = c1 // 2 + c2 // 2 + c, head_factor * c
            self.to_trunk_image = ImageHead(c)
            self.mask = nn.Sequential(
                same_block(phi_ch, hidden),
                ResBlock(hidden),
                same_block(hidden, c),
                MaskLogitHead(c),
            )
        else:
            phi_ch, hidden = c, 2 * c
            self.mask = mask_head(c)
        self.phi_channels = phi_ch

        def coded_head() -> nn.Sequential:
            return nn.Sequential(
                same_block(phi_ch + num_codes, hidden),
                *[ResBlock(hidden) for _ in range(head_blocks)],
                same_block(hidden, c),
                ImageHead(c),
            )

        self.fg, self.bg = coded_head(), coded_head()

    def sample_latents(self, n: int, generator: torch.Generator | None = None, device=None):
        """z and independent uniform codes f, b (b = f when codes are tied), drawn on the CPU."""
        z = self.sample_z(n, generator, device)
        f = torch.randint(self.num_codes, (n,), generator=generator)
        b = torch.randint(self.num_codes, (n,), generator=generator)
        if self.tied_codes:
            b = f.clone()
        return {"z": z, "f": f.to(z.device), "b": b.to(z.device)}

    def features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ, Φ's last activation)."""
        levels = self.phi(z, all_levels=True)
        last = levels[-1]
        if not self.global_features:
            return last, last
        phi = torch.cat([self.up_a1(levels[-3]), self.up_a2(levels[-2]), last], dim=1)
        return phi, last

    def forward(self, z: torch.Tensor, f=None, b=None) -> dict[str, torch.Tensor]:
        if f is None or b is None:
            raise ValueError(f"{self.kind} needs codes f and b; draw them with sample_latents()")
        phi, last = self.features(z)
        n, size = z.shape[0], self.resolution
        f1 = one_hot_codes(f, self.num_codes, "f").to(phi)
        b1 = one_hot_codes(b, self.num_codes, "b").to(phi)
        tile = lambda code: code[:, :, None, None].expand(n, self.num_codes, size, size)  # noqa: E731
        out = self.compose(
            self.fg(torch.cat([tile(f1), phi], 1)),
            self.bg(torch.cat([tile(b1), phi], 1)),
            self.mask(phi),
        )
        if self.global_features:
            out["trunk_image"] = self._check_image(self.to_trunk_image(last), "x̄_z")
        return out

    def parameter_groups(self):
        trunk = list(self.phi.parameters())
        if self.global_features:
            for m in (self.up_a1, self.up_a2, self.to_trunk_image):
                trunk += list(m.parameters())
        return {
            "trunk": trunk,
            "mask": list(self.mask.parameters()),
            "fg": list(self.fg.parameters()),
            "bg": list(self.bg.parameters()),
        }


class ComGANInfo(CodedComGAN):
    """Table 2's "+ L_info" row: ComGAN's heads on Φ's last activation, with codes and L_info."""

    kind = "comgan_info"

    def __init__(self, resolution: int, **kwargs):
        super().__init__(resolution, **kwargs, global_features=False)


class DSComGAN(CodedComGAN):
    """DS-ComGAN (Fig. 3): global features (Eq. 5), codes (Eq. 6), x̄_z judged by D (Eq. 7)."""

    kind = "ds_comgan"

    def __init__(self, resolution: int, **kwargs):
        super().__init__(resolution, **kwargs, global_features=True)


GENERATORS = {cls.kind: cls for cls in (SimpleGAN, Pi1, Pi2, ComGAN, ComGANInfo, DSComGAN)}


def build_generator(
    kind: str,
    resolution: int,
    z_dim: int,
    width: int,
    z_scale: float = 4.0,
    head_blocks: int = 3,
    num_codes: int = 0,
    tied_codes: bool = False,
    head_factor: int = 8,
):
    """A generator by its ``model.kind`` name (codes apply to ``comgan_info`` and ``ds_comgan``,
    ``head_factor`` to ``ds_comgan``)."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator kind {kind!r}; available: {', '.join(GENERATORS)}")
    cls = GENERATORS[kind]
    kwargs = {"z_dim": z_dim, "width": width, "z_scale": z_scale, "head_blocks": head_blocks}
    if getattr(cls, "has_codes", False):
        kwargs.update(num_codes=num_codes, tied_codes=tied_codes)
    if kind == "ds_comgan":
        kwargs["head_factor"] = head_factor
    return cls(resolution, **kwargs)
