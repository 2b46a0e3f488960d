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

import math

import torch
import torch.nn.functional as F

SPECIES = ("blob", "star", "squircle", "fish", "crescent")
SCENES = ("sky", "stripes", "meadow", "tiles", "bokeh")
SPLITS = ("train", "test")
# ``data.variant``: the cluttered scenes of this module (a stress test), scenery's centred objects
# over natural-looking scenes (the paper's regime), or simple_scenes' plain objects on smooth
# backgrounds (the parity check).
VARIANTS = ("clutter", "scenery", "simple")


def _variant(variant: str):
    """A variant's renderer and the names of its species and scenes (imported on first use: the
    other variants' modules import this one)."""
    if variant == "simple":
        from comgan_lib.data import simple_scenes as m

        return m.render_simple_item, m.SIMPLE_SPECIES, m.SIMPLE_SCENES
    if variant == "scenery":
        from comgan_lib.data import scenery as m

        return m.render_scenery_item, SPECIES, m.SCENERY_SCENES
    if variant == "clutter":
        return render_item, SPECIES, SCENES
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def variant_classes(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of a variant's object species and background scenes."""
    return _variant(variant)[1:]


MIN_RESOLUTION, MAX_RESOLUTION = 32, 128

# Base hue of each species (in [0, 1)); objects jitter around it so species stay recognisable.
_SPECIES_HUE = (0.02, 0.15, 0.55, 0.33, 0.80)
OBJECT_SCALE = (0.42, 0.68)  # object radius range, in half-image units
LIGHT = (0.55, 0.7)  # illumination field: base + amplitude * smooth noise


def _item_seed(seed: int, split: str, index: int) -> int:
    # Distinct, well-mixed streams per (seed, split, index); splits never share an item.
    return (seed * 1_000_003 + SPLITS.index(split) * 7_919 + index * 104_729 + 12_345) % (2**62)


def _uniform(gen: torch.Generator, low: float, high: float, shape=()) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high, (), generator=gen))


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] (broadcastable tensors) to RGB in [0, 1], channels stacked first."""
    h, s, v = torch.broadcast_tensors(torch.as_tensor(h), torch.as_tensor(s), torch.as_tensor(v))
    h6 = (h % 1.0) * 6.0
    k = torch.stack([(5 + h6) % 6, (3 + h6) % 6, (1 + h6) % 6])
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _value_noise(gen: torch.Generator, res: int, cells: int, channels: int = 1) -> torch.Tensor:
    """Smooth noise in [0, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    grid = torch.rand((1, channels, cells, cells), generator=gen)
    up = F.interpolate(grid, size=(res, res), mode="bicubic", align_corners=True)
    return up[0].clamp(0, 1)


def _pixel_grid(res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1]: (u to the right, v downwards), each [res, res]."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    v, u = torch.meshgrid(c, c, indexing="ij")
    return u, v


def _shape_inside(species: int, x: torch.Tensor, y: torch.Tensor, wobble: float) -> torch.Tensor:
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


def _foreground_layer(gen, species, u, v, res) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one object: its RGB layer over the whole image (in [0, 1]) and its binary mask."""
    cx, cy = _uniform(gen, -0.4, 0.4), _uniform(gen, -0.4, 0.4)
    scale = _uniform(gen, *OBJECT_SCALE)
    angle = _uniform(gen, -math.pi, math.pi)
    aspect = _uniform(gen, 0.8, 1.25)
    wobble = float(_uniform(gen, -math.pi, math.pi))
    cos_a, sin_a = torch.cos(angle), torch.sin(angle)
    # Object-local coordinates: translate, rotate, then scale anisotropically.
    du, dv = u - cx, v - cy
    x = (cos_a * du + sin_a * dv) / (scale * aspect)
    y = (-sin_a * du + cos_a * dv) / (scale / aspect)
    mask = _shape_inside(species, x, y, wobble)

    hue = _SPECIES_HUE[species] + _uniform(gen, -0.05, 0.05)
    return species_texture(gen, species, hue, x, y, res), mask


def species_texture(gen, species: int, hue, x, y, res) -> torch.Tensor:
    """A species' coloured texture in [0, 1] over the whole image, in object coordinates x, y:
    spots, rings, a checker, bands or smooth shading, at ``hue`` with random saturation/value."""
    sat, val = _uniform(gen, 0.55, 0.95), _uniform(gen, 0.55, 0.95)
    phase = _uniform(gen, 0, 2 * math.pi)
    name = SPECIES[species]
    if name == "blob":  # spots
        pattern = (_value_noise(gen, res, 7)[0] > 0.6).float()
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


def _background_layer(gen, scene, u, v, res) -> torch.Tensor:
    """Draw one scene as an RGB layer in [0, 1]. Colours are drawn from the full hue circle."""
    hue_a = _uniform(gen, 0, 1)
    hue_b = hue_a + _uniform(gen, 0.15, 0.5)
    col_a = hsv_to_rgb(hue_a, _uniform(gen, 0.3, 0.9), _uniform(gen, 0.35, 0.95)).view(3, 1, 1)
    col_b = hsv_to_rgb(hue_b, _uniform(gen, 0.3, 0.9), _uniform(gen, 0.35, 0.95)).view(3, 1, 1)
    name = SCENES[scene]
    if name == "sky":  # vertical gradient with soft clouds
        t = ((v + 1) / 2).unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t
        rgb = rgb + 0.6 * (_value_noise(gen, res, 5, channels=3) - 0.5)
    elif name == "stripes":  # straight stripes at a random angle and frequency
        angle, freq = _uniform(gen, 0, math.pi), _uniform(gen, 2.0, 4.5)
        s = torch.sin(math.pi * freq * (torch.cos(angle) * u + torch.sin(angle) * v))
        t = (s > 0).float().unsqueeze(0)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "meadow":  # two-colour smooth noise
        t = _value_noise(gen, res, 6)
        rgb = col_a * (1 - t) + col_b * t
    elif name == "tiles":  # checkerboard with random tile size and offset
        n, ox, oy = _uniform(gen, 2.0, 5.0), _uniform(gen, 0, 1), _uniform(gen, 0, 1)
        t = ((torch.floor(n * (u + 1) / 2 + ox) + torch.floor(n * (v + 1) / 2 + oy)) % 2).float()
        rgb = col_a * (1 - t.unsqueeze(0)) + col_b * t.unsqueeze(0)
    elif name == "bokeh":  # a plain field with distractor discs of other colours
        rgb = col_a.expand(3, res, res).clone()
        for _ in range(_randint(gen, 4, 9)):
            dx, dy, r = _uniform(gen, -1, 1), _uniform(gen, -1, 1), _uniform(gen, 0.06, 0.22)
            col = hsv_to_rgb(_uniform(gen, 0, 1), _uniform(gen, 0.3, 0.9), _uniform(gen, 0.4, 1))
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


def start_item(seed, split, index, resolution, num_species, num_scenes):
    """An item's own random stream, the pixel grid and its two labels drawn first:
    ``(gen, u, v, species, scene)``. Every variant's renderer begins here."""
    gen = torch.Generator().manual_seed(_item_seed(seed, split, index))
    u, v = _pixel_grid(resolution)
    species = _randint(gen, 0, num_species)
    scene = _randint(gen, 0, num_scenes)
    return gen, u, v, species, scene


def lit_layers(gen, fg, bg, resolution) -> tuple[torch.Tensor, torch.Tensor]:
    """One illumination field and sensor noise on both layers ([0, 1] in, [-1, 1] out): the
    composition stays exact, while the border colour stops being a reliable background model."""
    light = LIGHT[0] + LIGHT[1] * _value_noise(gen, resolution, 3)
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
        max_species, max_scenes = len(species_names), len(scene_names)
        if not 1 <= num_species <= max_species or not 1 <= num_scenes <= max_scenes:
            raise ValueError(
                f"num_species must be in [1, {max_species}] and num_scenes in "
                f"[1, {max_scenes}] for the {variant} variant, got {num_species} and {num_scenes}"
            )
        self.variant = variant
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
