"""The embedded default dataset: procedural objects over procedural scenes, with exact masks.

Every image obeys the paper's Assumption 1 exactly, ``x = x_f * x_m + x_b * (1 - x_m)``: a
textured foreground layer ``x_f`` (one of a few object *species*) and a background layer ``x_b``
(one of a few *scenes*) are drawn independently and composed with the object's binary mask
``x_m``. Nothing is downloaded and nothing is read from disk: item ``i`` of a split is a pure
function of ``(seed, split, i)``, drawn from its own random generator, so any item can be made on
its own, in any order, at any resolution (the same random numbers are drawn whatever the
resolution, so one item at 32 and at 128 pixels shows the same scene).

Usage::

    ds = SyntheticDataset(resolution=32, split="train", size=2000, seed=0)
    item = ds[0]   # {"image", "mask", "fg_class", "bg_class", "index"}

The scenes are deliberately cluttered (stripes, tiles, distractor dots, colour noise) and share
their colours with the objects, so that training-free predictors such as "threshold the colour
distance to the border" do clearly worse than a learnt segmenter.
"""

from __future__ import annotations

import functools
import math

import torch

from comgan_lib.data import scenery, simple_scenes
from comgan_lib.data.procedural import (
    SPECIES,
    SPECIES_HUE,
    SPLITS,
    compose_item,
    hsv_to_rgb,
    lit_layers,
    randint,
    shape_inside,
    species_texture,
    start_item,
    uniform,
    value_noise,
)

SCENES = ("sky", "stripes", "meadow", "tiles", "bokeh")
# ``data.variant``: the cluttered scenes of this module (a stress test), scenery's centred objects
# over natural-looking scenes (the paper's regime), or simple_scenes' plain objects on smooth
# backgrounds (the parity check).
VARIANTS = ("clutter", "scenery", "simple")


def _variant(variant: str):
    """A variant's renderer and the names of its species and scenes."""
    if variant == "simple":
        return (
            simple_scenes.render_simple_item,
            simple_scenes.SIMPLE_SPECIES,
            simple_scenes.SIMPLE_SCENES,
        )
    if variant == "scenery":
        return scenery.render_scenery_item, SPECIES, scenery.SCENERY_SCENES
    if variant == "clutter":
        return render_item, SPECIES, SCENES
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def variant_classes(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of a variant's object species and background scenes."""
    return _variant(variant)[1:]


MIN_RESOLUTION, MAX_RESOLUTION = 32, 128

OBJECT_SCALE = (0.42, 0.68)  # object radius range, in half-image units


def _foreground_layer(gen, species, u, v, res) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one object: its RGB layer over the whole image (in [0, 1]) and its binary mask."""
    cx, cy = uniform(gen, -0.4, 0.4), uniform(gen, -0.4, 0.4)
    scale = uniform(gen, *OBJECT_SCALE)
    angle = uniform(gen, -math.pi, math.pi)
    aspect = uniform(gen, 0.8, 1.25)
    wobble = float(uniform(gen, -math.pi, math.pi))
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    # Object-local coordinates: translate, rotate, then scale anisotropically.
    du, dv = u - cx, v - cy
    x = (cos_a * du + sin_a * dv) / (scale * aspect)
    y = (-sin_a * du + cos_a * dv) / (scale / aspect)
    mask = shape_inside(species, x, y, wobble)

    hue = SPECIES_HUE[species] + uniform(gen, -0.05, 0.05)
    return species_texture(gen, species, hue, x, y, res), mask


def _background_layer(gen, scene, u, v, res) -> torch.Tensor:
    """Draw one scene as an RGB layer in [0, 1]. Colours are drawn from the full hue circle."""
    hue_a = uniform(gen, 0, 1)
    hue_b = hue_a + uniform(gen, 0.15, 0.5)
    col_a = hsv_to_rgb(hue_a, uniform(gen, 0.3, 0.9), uniform(gen, 0.35, 0.95)).view(3, 1, 1)
    col_b = hsv_to_rgb(hue_b, uniform(gen, 0.3, 0.9), uniform(gen, 0.35, 0.95)).view(3, 1, 1)
    name = SCENES[scene]
    if name == "sky":  # vertical gradient with soft clouds
        t = ((v + 1) / 2).unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t
        rgb = rgb + 0.6 * (value_noise(gen, res, 5, channels=3) - 0.5)
    elif name == "stripes":  # straight stripes at a random angle and frequency
        angle, freq = uniform(gen, 0, math.pi), uniform(gen, 2.0, 4.5)
        s = torch.sin(math.pi * freq * (torch.cos(angle) * u + torch.sin(angle) * v))
        t = (s > 0).float().unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "meadow":  # two-colour smooth noise
        t = value_noise(gen, res, 6)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "tiles":  # checkerboard with random tile size and offset
        n, ox, oy = uniform(gen, 2.0, 5.0), uniform(gen, 0, 1), uniform(gen, 0, 1)
        t = ((torch.floor(n * (u + 1) / 2 + ox) + torch.floor(n * (v + 1) / 2 + oy)) % 2).float()
        rgb = col_a * (1 - t.unsqueeze(0)) + col_b * t.unsqueeze(0)
    elif name == "bokeh":  # a plain field with distractor discs of other colours
        rgb = col_a.expand(3, res, res).clone()
        for _ in range(randint(gen, 4, 9)):
            dx, dy, r = uniform(gen, -1, 1), uniform(gen, -1, 1), uniform(gen, 0.06, 0.22)
            col = hsv_to_rgb(uniform(gen, 0, 1), uniform(gen, 0.3, 0.9), uniform(gen, 0.4, 1))
            disc = ((u - dx) ** 2 + (v - dy) ** 2 < r**2).unsqueeze(0)
            rgb = torch.where(disc, col.view(3, 1, 1), rgb)
    else:
        raise ValueError(f"unknown scene index {scene}")
    return rgb.clamp(0, 1)


def render_item(
    seed: int, split: str, index: int, resolution: int, num_species: int, num_scenes: int
) -> dict:
    """Render one item: image, mask, both layers and the two labels. Pure and deterministic.

    Returns tensors in [-1, 1] for ``image``, ``foreground`` and ``background`` (each [3, R, R]),
    ``mask`` as float {0, 1} [1, R, R], and ``fg_class`` / ``bg_class`` as ints.
    """
    gen, u, v, species, scene = start_item(seed, split, index, resolution, num_species, num_scenes)
    fg, inside = _foreground_layer(gen, species, u, v, resolution)
    bg = _background_layer(gen, scene, u, v, resolution)
    fg, bg = lit_layers(gen, fg, bg, resolution)
    return compose_item(fg, bg, inside, species, scene)


class SyntheticDataset(torch.utils.data.Dataset):
    """Random-access synthetic split. Items are rendered on demand (or cached with ``cache=True``).

    Args:
        resolution: image side in pixels, 32 to 128.
        split: ``"train"`` or ``"test"`` (held-out); the two never share an item.
        size: number of items in the split.
        seed: dataset seed; the same seed gives the same images on every machine.
        num_species: number of foreground species used (1 to 5), see ``SPECIES``.
        num_scenes: number of background scenes used (1 to 5), see ``SCENES``.
        return_layers: also return the ``foreground`` and ``background`` layers.
        variant: ``"clutter"`` (this module's scenes), ``"scenery"`` (``scenery``) or
            ``"simple"`` (``simple_scenes``).
        camouflage: scenery only: the chance that each scene colour takes the object's hue.
        extra_scene_colours: scenery only: independent colours blended into each scene in
            soft patches (0 to 4).
    """

    has_masks = True

    def __init__(
        self,
        resolution: int = 32,
        split: str = "train",
        size: int = 2000,
        seed: int = 0,
        num_species: int = len(SPECIES),
        num_scenes: int = len(SCENES),
        return_layers: bool = False,
        cache: bool = False,
        variant: str = "clutter",
        camouflage: float = 0.0,
        extra_scene_colours: int = 0,
    ):
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise ValueError(
                f"synthetic resolution must be in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], "
                f"got {resolution}"
            )
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self._render, species_names, scene_names = _variant(variant)
        if not 0.0 <= camouflage <= 1.0:
            raise ValueError(f"camouflage must be in [0, 1], got {camouflage}")
        if camouflage > 0:
            if variant != "scenery":
                raise ValueError(f"camouflage applies to the scenery variant, not {variant!r}")
            self._render = functools.partial(self._render, camouflage=camouflage)
        if not 0 <= extra_scene_colours <= scenery.MAX_EXTRA_COLOURS:
            raise ValueError(
                f"extra_scene_colours must be in [0, {scenery.MAX_EXTRA_COLOURS}], "
                f"got {extra_scene_colours}"
            )
        if extra_scene_colours > 0:
            if variant != "scenery":
                raise ValueError(
                    f"extra_scene_colours applies to the scenery variant, not {variant!r}"
                )
            self._render = functools.partial(self._render, extra_colours=extra_scene_colours)
        max_species, max_scenes = len(species_names), len(scene_names)
        if not 1 <= num_species <= max_species or not 1 <= num_scenes <= max_scenes:
            raise ValueError(
                f"num_species must be in [1, {max_species}] and num_scenes in "
                f"[1, {max_scenes}] for the {variant} variant, got {num_species} and {num_scenes}"
            )
        self.variant, self.camouflage = variant, camouflage
        self.extra_scene_colours = extra_scene_colours
        self.resolution, self.split, self.size, self.seed = resolution, split, size, seed
        self.num_species, self.num_scenes = num_species, num_scenes
        self.return_layers = return_layers
        self.names = [f"{split}_{i:06d}" for i in range(size)]
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for a split of {self.size}")
        if self._cache is not None and index in self._cache:
            item = self._cache[index]
        else:
            item = self._render(
                self.seed, self.split, index, self.resolution, self.num_species, self.num_scenes
            )
            if self._cache is not None:
                self._cache[index] = item
        out = {k: item[k] for k in ("image", "mask", "fg_class", "bg_class")}
        if self.return_layers:
            out["foreground"], out["background"] = item["foreground"], item["background"]
        out["index"] = index
        return out
