"""The ``scenery`` variant of the synthetic dataset: a miniature of the paper's datasets.

CUB, Stanford Dogs and Cars are read as bounding-box crops (CUB: 1.5x the box), Flowers is
similar: one object, near the centre, wholly inside the frame, covering a fifth to a half of the
image, over natural scenery that varies independently of it. This variant draws images with that
character, at any resolution from the same random numbers:

- **One object per image**, one of the five species of ``synthetic`` (outlines: blob, star,
  squircle, fish, crescent; textures: spots, rings, checker, bands, smooth shading), in varied
  pose (any rotation, aspect 0.8-1.25, mirror flips), centred within a jitter of 0.08
  half-widths, wholly inside the frame. Its area is drawn directly: coverage ~ N(0.27, 0.07)
  clipped to [0.12, 0.45], as the spread of birds in CUB's 1.5x box crops.
- **Natural-looking scenes with no object-like parts**: a sky gradient with soft clouds, foliage
  (two octaves of noise), bark (noise stretched along one direction), a smooth colour field, and
  an out-of-focus blend. All smooth or fine-grained; none draws discs, stripes or tiles.
- **Overlapping palettes**: scenes take their colours from the same hue ranges as the species
  (browns, yellows, greens, blues, reds), so no colour rule alone separates object from scene.
- **Camouflage** (``camouflage``, ``data.camouflage``): each of the scene's colours takes the
  object's own hue (within ``HUE_JITTER``) with that chance, as a bird in foliage of its own
  colour. Without it an image's object and scene rarely share a hue, and a per-image colour model
  from a centred prior (GrabCut-like, ``metrics.masks.centre_colour_em``) solves most images;
  with it the object differs from its scene by outline, texture, saturation and brightness (at
  this workbook's budget the generators then lose their masks: docs/FINDINGS.md).
- **Extra scene colours** (``extra_colours``, ``data.extra_scene_colours``): that many more
  colours, each from the whole palette and independent of the object, blended into the scene in
  soft patches, as a meadow or a garden behind a bird. The scene's colour spread then covers the
  object's more often, so a per-image colour model loses its footing, while object and scene stay
  independent, as the generator's separate draws of f and b assume.

``render_scenery_item`` has the signature of ``synthetic.render_item`` plus ``camouflage`` and
``extra_colours``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from comgan_lib.data.procedural import (
    compose_item,
    hsv_to_rgb,
    lit_layers,
    shape_inside,
    species_texture,
    start_item,
    uniform,
    value_noise,
)

SCENERY_SCENES = ("sky", "foliage", "bark", "field", "out_of_focus")
# Hue ranges shared by objects and scenes: brown/orange, yellow, green, blue, red/magenta.
PALETTE = ((0.03, 0.11), (0.12, 0.18), (0.22, 0.4), (0.52, 0.64), (0.88, 1.0))
SPECIES_PALETTE = (0, 1, 2, 3, 4)  # the palette entry each species' hue comes from
COVERAGE = (0.27, 0.07, 0.12, 0.45)  # mean, spread, min, max of the object's share of the image
CENTRE_JITTER = 0.08  # in half-image units
HUE_JITTER = 0.03  # how far a camouflaged scene colour's hue strays from the object's
MAX_EXTRA_COLOURS = 4
PATCH_CELLS = 6  # noise cells across the image for the extra colours' patches


@functools.cache
def _unit_area(species: int) -> float:
    """The area of a species' outline at scale 1 (in object units), measured on a fine grid."""
    c = torch.linspace(-2, 2, 801)
    y, x = torch.meshgrid(c, c, indexing="ij")
    inside = shape_inside(species, x, y, wobble=0.0)
    return float(inside.float().mean()) * 16.0


def _palette_hue(gen, entry: int) -> torch.Tensor:
    low, high = PALETTE[entry]
    return uniform(gen, low, high) % 1.0


def _object(gen, species: int, u, v, res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The object's RGB layer over the whole image (in [0, 1]), its mask (wholly inside) and hue."""
    mean, spread, low, high = COVERAGE
    target = float((mean + spread * torch.randn((), generator=gen)).clamp(low, high))
    # Image area is 4 in half-image units: scale so the outline covers ``target`` of it.
    scale = math.sqrt(target * 4.0 / _unit_area(species))
    angle = uniform(gen, -math.pi, math.pi)
    aspect = uniform(gen, 0.8, 1.25)
    mirror = 1.0 if bool(torch.rand((), generator=gen) < 0.5) else -1.0
    wobble = float(uniform(gen, -math.pi, math.pi))
    cx, cy = uniform(gen, -CENTRE_JITTER, CENTRE_JITTER, (2,))
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    du, dv = u - cx, v - cy
    # Shrink until the outline stays off the frame's outer pixel ring (a few tries at most).
    for _ in range(20):
        x = mirror * (cos_a * du + sin_a * dv) / (scale * aspect)
        y = (-sin_a * du + cos_a * dv) / (scale / aspect)
        inside = shape_inside(species, x, y, wobble)
        ring = torch.cat([inside[0], inside[-1], inside[:, 0], inside[:, -1]])
        if not bool(ring.any()):
            break
        scale *= 0.93
    hue = _palette_hue(gen, SPECIES_PALETTE[species])
    return species_texture(gen, species, hue, x, y, res), inside, hue


def _scene_colours(gen, object_hue, camouflage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two colours from (possibly different) palette entries, as [3, 1, 1] tensors; each takes
    the object's hue instead with chance ``camouflage``."""
    cols = []
    for _ in range(2):
        entry = int(torch.randint(len(PALETTE), (), generator=gen))
        hue = _palette_hue(gen, entry)
        # No draw at 0: the images of ``camouflage: 0`` stay those measured before it existed.
        if camouflage > 0 and bool(torch.rand((), generator=gen) < camouflage):
            hue = (object_hue + uniform(gen, -HUE_JITTER, HUE_JITTER)) % 1.0
        col = hsv_to_rgb(hue, uniform(gen, 0.25, 0.85), uniform(gen, 0.3, 0.95))
        cols.append(col.view(3, 1, 1))
    return cols[0], cols[1]


def _stretched_noise(gen, res: int, cells_along: int, cells_across: int) -> torch.Tensor:
    """Value noise with long cells along a random direction (bark, grain), in [0, 1]."""
    grid = torch.rand((1, 1, cells_across, cells_along), generator=gen)
    big = F.interpolate(grid, size=(2 * res, 2 * res), mode="bicubic", align_corners=True)
    angle = float(uniform(gen, 0, math.pi))
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos_a, -sin_a, 0.0], [sin_a, cos_a, 0.0]]).unsqueeze(0) * 0.5
    flow = F.affine_grid(theta, (1, 1, res, res), align_corners=False)
    return F.grid_sample(big, flow, mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)


def _scene(gen, scene: int, u, v, res: int, object_hue, camouflage: float) -> torch.Tensor:
    """One scene as an RGB layer in [0, 1]."""
    col_a, col_b = _scene_colours(gen, object_hue, camouflage)
    name = SCENERY_SCENES[scene]
    if name == "sky":  # vertical gradient, soft clouds
        t = ((v + 1) / 2).unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t + 0.35 * (value_noise(gen, res, 4) - 0.5)
    elif name == "foliage":  # two octaves of noise between two colours
        t = 0.6 * value_noise(gen, res, 5) + 0.4 * value_noise(gen, res, 11)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "bark":  # grain along one direction
        t = _stretched_noise(gen, res, 3, 13).unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "field":  # a smooth colour field
        t = value_noise(gen, res, 2)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "out_of_focus":  # three colours blended softly
        col_c = _scene_colours(gen, object_hue, camouflage)[0]
        t1, t2 = value_noise(gen, res, 4), value_noise(gen, res, 4)
        rgb = col_a * (1 - t1) + col_b * t1
        rgb = rgb * (1 - 0.6 * t2) + col_c * 0.6 * t2
    else:
        raise ValueError(f"unknown scenery scene index {scene}")
    return rgb.clamp(0, 1)


def _blend_patches(gen, rgb: torch.Tensor, res: int, extra_colours: int) -> torch.Tensor:
    """Blend ``extra_colours`` more colours into a scene in soft patches, each drawn from the
    whole palette, independently of the object (never camouflaged). Each patch colour weighs a
    quarter of the image on average: above one half on about a fifth of the pixels, something on
    about half of them (measured on 500 noise fields), fading over a few pixels."""
    for _ in range(extra_colours):
        col = _scene_colours(gen, None, 0.0)[0]
        t = ((value_noise(gen, res, PATCH_CELLS) - 0.45) * 2.0).clamp(0, 1)
        rgb = rgb * (1 - t) + col * t
    return rgb


def render_scenery_item(
    seed: int,
    split: str,
    index: int,
    resolution: int,
    num_species: int,
    num_scenes: int,
    camouflage: float = 0.0,
    extra_colours: int = 0,
) -> dict:
    """Render one item of the scenery variant (the keys of ``synthetic.render_item``); each of
    the scene's colours takes the object's own hue with chance ``camouflage``, and
    ``extra_colours`` independent colours are blended into the scene in soft patches."""
    gen, u, v, species, scene = start_item(seed, split, index, resolution, num_species, num_scenes)
    fg, inside, hue = _object(gen, species, u, v, resolution)
    bg = _scene(gen, scene, u, v, resolution, hue, camouflage)
    # No draw at 0: the default's images stay bit-for-bit those measured before this option.
    bg = _blend_patches(gen, bg, resolution, extra_colours).clamp(0, 1)
    fg, bg = lit_layers(gen, fg, bg, resolution)  # soft light and sensor noise, as in clutter
    return compose_item(fg, bg, inside, species, scene)
