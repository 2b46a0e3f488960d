"""Drawing primitives shared by every variant of the synthetic dataset.

Each item of a split draws from its own random stream (``start_item``), so it is a pure function of
``(seed, split, index)``; the helpers here draw uniform numbers, colours and smooth noise from that
stream, give the five object species their outline and texture, light both layers, and compose the
item by the paper's Assumption 1 (Eq. 1), exactly. ``synthetic`` (the clutter scenes and the
dataset class), ``scenery`` and ``simple_scenes`` build their renderers from these pieces.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SPECIES = ("blob", "star", "squircle", "fish", "crescent")
SPLITS = ("train", "test")

# Base hue of each species (in [0, 1)); objects jitter around it so species stay recognisable.
SPECIES_HUE = (0.02, 0.15, 0.55, 0.33, 0.80)


LIGHT = (0.55, 0.7)  # illumination field: base + amplitude * smooth noise


def item_seed(seed: int, split: str, index: int) -> int:
    # Distinct, well-mixed streams per (seed, split, index); splits never share an item.
    return (seed * 1_000_003 + SPLITS.index(split) * 7_919 + index * 104_729 + 12_345) % (2**62)


def uniform(gen: torch.Generator, low: float, high: float, shape=()) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (), generator=gen))


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] (broadcastable tensors) to RGB in [0, 1], channels stacked first."""
    h, s, v = torch.broadcast_tensors(torch.as_tensor(h), torch.as_tensor(s), torch.as_tensor(v))
    h6 = (h % 1.0) * 6.0
    k = torch.stack([(5 + h6) % 6, (3 + h6) % 6, (1 + h6) % 6])
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def value_noise(gen: torch.Generator, res: int, cells: int, channels: int = 1) -> torch.Tensor:
    """Smooth noise in [0, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = torch.rand((1, channels, cells, cells), generator=gen)
    up = F.interpolate(grid, size=(res, res), mode="bicubic", align_corners=True)
    return up[0].clamp(0, 1)


def pixel_grid(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1]: (u to the right, v downwards), each [res, res]."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    v, u = torch.meshgrid(c, c, indexing="ij")
    return u, v


def shape_inside(species: int, x: torch.Tensor, y: torch.Tensor, wobble: float) -> torch.Tensor:
    """Boolean interior of a species' outline, in the object's own unit coordinates."""
    rho, phi = torch.sqrt(x**2 + y**2), torch.atan2(y, x)
    name = SPECIES[species]
    if name == "blob":
        return rho < 1 + 0.15 * torch.sin(3 * phi + wobble)
    if name == "star":
        return rho < 0.72 + 0.32 * torch.cos(5 * phi + wobble)
    if name == "squircle":
        return x.abs() ** 4 + y.abs() ** 4 < 0.75
    if name == "fish":
        body = (x / 1.0) ** 2 + (y / 0.55) ** 2 < 1
        tail = (x < -0.75) & (x > -1.45) & (y.abs() < 0.9 * (-0.75 - x))
        return body | tail
    if name == "crescent":
        return (rho < 1) & ((x - 0.45 - 0.1 * wobble) ** 2 + y**2 > 0.75**2)
    raise ValueError(f"unknown species index {species}")


def species_texture(gen, species: int, hue, x, y, res) -> torch.Tensor:
    """A species' coloured texture in [0, 1] over the whole image, in object coordinates x, y:
    spots, rings, a checker, bands or smooth shading, at ``hue`` with random saturation/value."""
    sat, val = uniform(gen, 0.55, 0.95), uniform(gen, 0.55, 0.95)
    phase = uniform(gen, 0, 2 * math.pi)
    name = SPECIES[species]
    if name == "blob":  # spots
        pattern = (value_noise(gen, res, 7)[0] > 0.6).float()
    elif name == "star":  # concentric rings
        pattern = 0.5 + 0.5 * torch.sin(9 * torch.sqrt(x**2 + y**2) + phase)
    elif name == "squircle":  # checker in object coordinates
        pattern = ((torch.floor(2.5 * x + phase) + torch.floor(2.5 * y)) % 2).float()
    elif name == "fish":  # bands across the body
        pattern = (torch.sin(7 * x + phase) > 0.3).float()
    else:  # crescent: smooth shading
        pattern = 0.5 + 0.5 * torch.tanh(1.5 * (x + y))
    shade = 0.75 + 0.25 * (1 - 0.5 * (x + 0.3) ** 2 - 0.5 * (y + 0.3) ** 2).clamp(0, 1)
    rgb = hsv_to_rgb(hue, sat * (1 - 0.35 * pattern), val * (0.65 + 0.35 * pattern) * shade)
    return rgb.clamp(0, 1)


def start_item(seed, split, index, resolution, num_species, num_scenes):
    """An item's own random stream, the pixel grid and its two labels drawn first:
    ``(gen, u, v, species, scene)``. Every variant's renderer begins here."""
    gen = torch.Generator().manual_seed(item_seed(seed, split, index))
    u, v = pixel_grid(resolution)
    species = randint(gen, 0, num_species)
    scene = randint(gen, 0, num_scenes)
    return gen, u, v, species, scene


def lit_layers(gen, fg, bg, resolution) -> tuple[torch.Tensor, torch.Tensor]:
    """One illumination field and sensor noise on both layers ([0, 1] in, [-1, 1] out): the
    composition stays exact, while the border colour stops being a reliable background model."""
    light = LIGHT[0] + LIGHT[1] * value_noise(gen, resolution, 3)
    fg, bg = fg * light, bg * light
    fg = (fg + 0.02 * torch.randn(fg.shape, generator=gen)).clamp(0, 1) * 2 - 1
    bg = (bg + 0.02 * torch.randn(bg.shape, generator=gen)).clamp(0, 1) * 2 - 1
    return fg, bg


def compose_item(fg, bg, inside, species: int, scene: int) -> dict:
    """The item's dict: the image composed from both layers (Assumption 1, Eq. 1, exactly)."""
    mask = inside.float().unsqueeze(0)
    return {
        "image": fg * mask + bg * (1 - mask),
        "mask": mask,
        "foreground": fg,
        "background": bg,
        "fg_class": species,
        "bg_class": scene,
    }
