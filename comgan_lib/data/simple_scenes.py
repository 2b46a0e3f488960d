"""The ``simple`` variant of the synthetic dataset: one striped object on a smooth background.

A reference dataset for the parity check (``params/simple.yaml``): on data like this any working
layered GAN should draw clean, tight, filled masks within a few thousand CPU steps, so a failure
there points at the implementation, not at the data. Each image is one object of a single shaded
colour with two-tone stripes (an ellipse, a rounded square or a lens; the *species*) over a smooth
*scene* (a linear gradient, a radial gradient or a soft two-colour blend), composed exactly by
Assumption 1. The object lies wholly inside the frame and covers about 4% to 25% of it.

Why stripes: with plain objects both of ComGAN's layers learn to paint the object (a smooth blob is
as easy for the background generator as a smooth gradient), and the masks stay mixed (seed 1: oracle
IoU 0.55 at 3,000 steps, docs/FINDINGS.md). A texture that only objects carry is what the probe's
striped ellipses have, and what the paper's objects (feathers, fur, paint) have over their scenery.

``render_simple_item`` has the signature of ``synthetic.render_item``: item ``i`` of a split is a
pure function of ``(seed, split, i)``, the same random numbers whatever the resolution.
"""

from __future__ import annotations

import math

import torch

from comgan_lib.data.procedural import (
    compose_item,
    hsv_to_rgb,
    start_item,
    uniform,
    value_noise,
)

SIMPLE_SPECIES = ("ellipse", "rounded_square", "lens")
SIMPLE_SCENES = ("linear_gradient", "radial_gradient", "soft_blend")
RADIUS = (0.28, 0.5)  # object half-size, in half-image units: about 4% to 25% of the image


def _object(gen, species: int, u, v) -> tuple[torch.Tensor, torch.Tensor]:
    """The object's mask and its shading in [0, 1]: stripes and a soft highlight toward the upper
    left."""
    radius = uniform(gen, *RADIUS)
    aspect = uniform(gen, 0.7, 1.4)
    angle = uniform(gen, -math.pi, math.pi)
    # Wholly inside: the centre keeps the longest half-axis (with rotation) off the border.
    reach = float(radius * max(aspect, 1 / aspect) ** 0.5) * 1.1
    limit = max(0.0, 0.95 - reach)
    cx, cy = uniform(gen, -limit, limit), uniform(gen, -limit, limit)
    du, dv = u - cx, v - cy
    x = (torch.cos(angle) * du + torch.sin(angle) * dv) / (radius * aspect**0.5)
    y = (-torch.sin(angle) * du + torch.cos(angle) * dv) / (radius / aspect**0.5)
    name = SIMPLE_SPECIES[species]
    if name == "ellipse":
        inside = x**2 + y**2 < 1
    elif name == "rounded_square":
        inside = x.abs() ** 4 + y.abs() ** 4 < 0.7
    elif name == "lens":  # the intersection of two discs
        inside = ((x - 0.5) ** 2 + y**2 < 1.1) & ((x + 0.5) ** 2 + y**2 < 1.1)
    else:
        raise ValueError(f"unknown simple species index {species}")
    shade = 1 - 0.25 * ((x + 0.4) ** 2 + (y + 0.4) ** 2).clamp(0, 2) / 2
    # Two-tone stripes across the object's long axis, about 7 pixels apart at 32 px.
    along = torch.cos(angle) * du + torch.sin(angle) * dv
    freq, phase = uniform(gen, 12, 16), uniform(gen, 0, 2 * math.pi)
    shade = shade * (0.75 + 0.25 * torch.sign(torch.sin(freq * along + phase)))
    return inside, shade


def _scene(gen, scene: int, u, v, res: int) -> torch.Tensor:
    """A smooth RGB background in [0, 1] between two random colours."""
    col_a = hsv_to_rgb(uniform(gen, 0, 1), uniform(gen, 0.2, 0.8), uniform(gen, 0.3, 0.95))
    col_b = hsv_to_rgb(uniform(gen, 0, 1), uniform(gen, 0.2, 0.8), uniform(gen, 0.3, 0.95))
    name = SIMPLE_SCENES[scene]
    if name == "linear_gradient":
        angle = uniform(gen, 0, 2 * math.pi)
        t = (torch.cos(angle) * u + torch.sin(angle) * v + 1.5) / 3
    elif name == "radial_gradient":
        ox, oy = uniform(gen, -1, 1), uniform(gen, -1, 1)
        t = (((u - ox) ** 2 + (v - oy) ** 2).sqrt() / 2.8).clamp(0, 1)
    elif name == "soft_blend":
        t = value_noise(gen, res, 3)[0]
    else:
        raise ValueError(f"unknown simple scene index {scene}")
    t = t.unsqueeze(0)
    return col_a.view(3, 1, 1) * (1 - t) + col_b.view(3, 1, 1) * t


def render_simple_item(
    seed: int, split: str, index: int, resolution: int, num_species: int, num_scenes: int
) -> dict:
    """Render one item of the simple variant (the keys of ``synthetic.render_item``)."""
    gen, u, v, species, scene = start_item(seed, split, index, resolution, num_species, num_scenes)
    inside, shade = _object(gen, species, u, v)
    colour = hsv_to_rgb(uniform(gen, 0, 1), uniform(gen, 0.4, 1.0), uniform(gen, 0.5, 1.0))
    fg = (colour.view(3, 1, 1) * shade).clamp(0, 1) * 2 - 1
    bg = _scene(gen, scene, u, v, resolution).clamp(0, 1) * 2 - 1
    return compose_item(fg, bg, inside, species, scene)
