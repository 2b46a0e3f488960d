"""The latent explorer: vary f, b and z of a trained DS-ComGAN and watch each layer.

Everything a widget does is a plain function, so pytest can drive it without a browser:

- ``latents_for(G, z_seed, f, b, z_seed_2=None, t=0.0)``: one latent triple, z optionally
  interpolated between two seeds (spherical interpolation, which keeps the norm z ~ N(0, 1)·s has);
- ``render(G, latents, layers)``: the chosen layers side by side as one uint8 RGB array;
- ``sweep(G, z_seeds, factor, values, base)``: grids for Fig. 6 / Fig. 7 — one factor varied along
  the columns, everything else fixed;
- ``Explorer(G)``: the ipywidgets UI (dropdowns for f and b, a z seed, a second seed and an
  interpolation slider, layer toggles); ``Explorer.update()`` is what every control calls.

Usage in a notebook::

    ex = Explorer(load_generator(run, "ds_comgan_beta1"))
    ex.widget          # display it
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch

from comgan_lib.train import generate

LAYERS = ("image", "mask", "fg", "bg", "masked_fg", "masked_bg")
LAYER_TITLES = {
    "image": "image x̄",
    "mask": "mask M",
    "fg": "foreground F",
    "bg": "background B",
    "masked_fg": "F ⊙ M",
    "masked_bg": "B ⊙ (1 − M)",
}


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latent vectors (rows), linear when they are parallel."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return (1 - t) * a + t * b
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def z_from_seed(G, seed: int, n: int = 1) -> torch.Tensor:
    return G.sample_z(n, generator=torch.Generator().manual_seed(int(seed)), device="cpu")


def latents_for(G, z_seed: int, f: int, b: int, z_seed_2: int | None = None, t: float = 0.0):
    """One latent triple (z, f, b); ``z`` is interpolated towards ``z_seed_2`` by ``t``."""
    z = z_from_seed(G, z_seed)
    if z_seed_2 is not None and t:
        z = slerp(z, z_from_seed(G, z_seed_2), float(t))
    if not 0 <= f < G.num_codes or not 0 <= b < G.num_codes:
        raise ValueError(f"f and b must lie in [0, {G.num_codes}), got f={f}, b={b}")
    if G.tied_codes and f != b:
        raise ValueError("this generator ties its codes (b = f): choose b equal to f")
    return {"z": z, "f": torch.tensor([f]), "b": torch.tensor([b])}


def layer_images(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every displayable layer as [N, 3, H, W] in [0, 1]."""
    m = out["mask"]
    to01 = lambda x: (x.clamp(-1, 1) + 1) / 2  # noqa: E731
    return {
        "image": to01(out["image"]),
        "mask": m.expand(-1, 3, -1, -1),
        "fg": to01(out["fg"]),
        "bg": to01(out["bg"]),
        "masked_fg": to01(out["fg"]) * m,
        "masked_bg": to01(out["bg"]) * (1 - m),
    }


@torch.no_grad()
def render(G, latents: dict[str, torch.Tensor], layers=("image", "mask", "fg", "bg"), pad: int = 2):
    """The chosen layers of the first sample side by side: a uint8 array [H, W·k + pad·(k−1), 3]."""
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers must be a non-empty subset of {LAYERS}, got {list(layers)}")
    images = layer_images(generate(G, latents))
    tiles = [images[name][0] for name in layers]
    h = tiles[0].shape[1]
    gap = torch.ones(3, h, pad)
    row = torch.cat([t for tile in tiles for t in (tile, gap)][:-1], dim=2)
    return (row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@torch.no_grad()
def sweep(G, z_seeds, factor: str, values, base: dict | None = None) -> dict[str, torch.Tensor]:
    """Outputs for every (row seed, column value): rows are z seeds, columns vary ``factor``.

    ``factor`` is ``"z"`` (values are seeds), ``"f"`` or ``"b"`` (values are codes). ``base`` fixes
    the other codes (default f = b = 0); with tied codes, varying f or b varies both.
    Returns the generator's outputs with a leading [rows·columns] batch, row-major.
    """
    if factor not in ("z", "f", "b"):
        raise ValueError(f"factor must be z, f or b, got {factor!r}")
    base = {"f": 0, "b": 0} | (base or {})
    zs, fs, bs = [], [], []
    for seed in z_seeds:
        for v in values:
            zs.append(z_from_seed(G, v if factor == "z" else seed))
            f = v if factor == "f" else base["f"]
            b = v if factor == "b" else base["b"]
            if G.tied_codes:
                f = b = v if factor in ("f", "b") else base["f"]
            fs.append(f)
            bs.append(b)
    latents = {"z": torch.cat(zs), "f": torch.tensor(fs), "b": torch.tensor(bs)}
    return generate(G, latents)


def to_png(array: np.ndarray, scale: int = 4) -> bytes:
    """PNG bytes of a uint8 RGB array, enlarged ``scale`` times with nearest-neighbour."""
    from PIL import Image

    img = Image.fromarray(array)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class Explorer:
    """The ipywidgets UI over ``render``; ``update()`` redraws and records its latency."""

    def __init__(self, G, z_seed: int = 0, scale: int = 4):
        import ipywidgets as w

        if not getattr(G, "has_codes", False):
            raise ValueError(f"the explorer needs a generator with codes f and b, got {G.kind}")
        self.G, self.scale = G.eval(), scale
        codes = list(range(G.num_codes))
        self.f = w.Dropdown(options=codes, value=0, description="f (foreground)")
        self.b = w.Dropdown(options=codes, value=0, description="b (background)")
        self.b.disabled = bool(G.tied_codes)
        self.z_seed = w.BoundedIntText(value=z_seed, min=0, max=2**31 - 1, description="z seed")
        self.z_seed_2 = w.BoundedIntText(
            value=z_seed + 1, min=0, max=2**31 - 1, description="z seed 2"
        )
        self.t = w.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description="z → z₂")
        self.layers = w.SelectMultiple(
            options=[(LAYER_TITLES[k], k) for k in LAYERS],
            value=("image", "mask", "fg", "bg"),
            description="layers",
        )
        self.image = w.Image(format="png")
        self.status = w.HTML()
        controls = [self.f, self.b, self.z_seed, self.z_seed_2, self.t, self.layers]
        for c in controls:
            c.observe(lambda _change: self.update(), names="value")
        self.widget = w.VBox(
            [w.HBox([w.VBox(controls[:3]), w.VBox(controls[3:])]), self.image, self.status]
        )
        self.last_latency_s = None
        self.update()

    def current_latents(self) -> dict[str, torch.Tensor]:
        b = self.f.value if self.G.tied_codes else self.b.value
        return latents_for(
            self.G, self.z_seed.value, self.f.value, b, self.z_seed_2.value, self.t.value
        )

    def update(self) -> None:
        start = time.perf_counter()
        layers = tuple(self.layers.value) or ("image",)
        self.image.value = to_png(render(self.G, self.current_latents(), layers), self.scale)
        self.last_latency_s = time.perf_counter() - start
        titles = " | ".join(LAYER_TITLES[k] for k in layers)
        self.status.value = (
            f"<small>{titles} — updated in {self.last_latency_s * 1000:.0f} ms</small>"
        )
