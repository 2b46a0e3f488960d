"""Typed, validated run parameters loaded from one YAML file in ``params/``.

One ``Params`` object describes a whole run: data, models, stage-1 and stage-2 training,
evaluation and output. ``load_params(path, overrides)`` reads the file, applies command-line
overrides given as dotted keys (``train.steps=200``), and checks every key and value. Every mistake
is one ``ConfigError`` line naming the source, the key and what is allowed, e.g.::

    params/synthetic.yaml: unknown key 'train.stesp'; did you mean 'train.steps'?

Field constraints live next to the field (``meta(choices=..., min=..., max=...)``), so the schema,
the validation and the documentation (``describe_params()``) come from one place.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from comgan_lib.errors import ConfigError

# Numeric precisions of a training step (comgan_lib.speed says what each one does).
PRECISIONS = ("fp32", "tf32", "bf16")

NOTEBOOKS = (
    "00_data",
    "01_pi_baselines",
    "02_comgan",
    "03_disentanglement",
    "04_segmentation",
    "05_tables",
    "06_explore",
)


def meta(help: str, **constraints) -> dict:
    """Field metadata: a one-line help and optional ``choices``, ``min``, ``max``."""
    return {"help": help, **constraints}


@dataclass
class RunParams:
    name: str = field(metadata=meta("run folder name under output.root; defaults to file stem"))
    seed: int = field(default=0, metadata=meta("global seed for torch, numpy and python", min=0))
    device: str = field(
        default="auto", metadata=meta("where to compute", choices=("auto", "cpu", "cuda"))
    )
    notebooks: list[str] = field(
        default_factory=lambda: list(NOTEBOOKS),
        metadata=meta("notebooks to execute, in order", choices=NOTEBOOKS),
    )


@dataclass
class DataParams:
    kind: str = field(
        metadata=meta(
            "dataset (docs/DATASETS.md)",
            choices=(
                "synthetic",
                "folder",
                "cub",
                "stanford_dogs",
                "stanford_cars",
                "flowers",
                "clevr6",
                "class_folders",
            ),
        )
    )
    resolution: int = field(default=32, metadata=meta("image side in pixels", min=16, max=1024))
    root: str | None = field(
        default=None,
        metadata=meta("dataset folder (every kind but synthetic; see docs/DATASETS.md)"),
    )
    seed: int = field(default=0, metadata=meta("dataset / split seed", min=0))
    holdout_fraction: float = field(
        default=0.1,
        metadata=meta("held-out share (folder, clevr6, class_folders)", min=0.0, max=0.9),
    )
    train_size: int = field(default=4000, metadata=meta("synthetic train images", min=1))
    test_size: int = field(default=500, metadata=meta("synthetic held-out images", min=1))
    num_species: int = field(default=5, metadata=meta("synthetic fg species", min=1, max=5))
    num_scenes: int = field(default=5, metadata=meta("synthetic bg scenes", min=1, max=5))
    variant: str = field(
        default="clutter",
        metadata=meta(
            "synthetic images: clutter (cluttered scenes, off-centre objects: a stress test), "
            "scenery (one centred object over natural-looking scenes: the paper's regime) or "
            "simple (one plain object on a smooth background: the parity check)",
            choices=("clutter", "scenery", "simple"),
        ),
    )
    camouflage: float = field(
        default=0.0,
        metadata=meta(
            "synthetic scenery only: chance that each scene colour takes the object's own hue "
            "(camouflage, as birds in foliage; per-image colour rules then fail)",
            min=0.0,
            max=1.0,
        ),
    )
    extra_scene_colours: int = field(
        default=0,
        metadata=meta(
            "synthetic scenery only: more colours, each drawn independently of the object, blended "
            "into every scene in soft patches (a meadow of several hues; per-image colour rules "
            "then fail while object and scene stay independent)",
            min=0,
            max=4,
        ),
    )
    resize_mode: str = field(
        default="center_crop",
        metadata=meta(
            "how folder, clevr6, class_folders images reach R×R",
            choices=("center_crop", "stretch"),
        ),
    )
    on_bad_file: str = field(
        default="error",
        metadata=meta("a corrupt or unpaired file: stop or skip", choices=("error", "skip")),
    )
    num_workers: int = field(
        default=0,
        metadata=meta(
            "worker processes decoding images (loading the training set, evaluation)", min=0, max=64
        ),
    )
    split_scheme: str = field(
        default="official",
        metadata=meta(
            "cub: official train_test_split.txt or redo's train_val_test_split.txt (10,000/788/"
            "1,000); flowers: official setid names or redo's swapped ones (train = tstid)",
            choices=("official", "redo"),
        ),
    )
    train_split: str = field(
        default="train",
        metadata=meta(
            "split that training reads (all: every image, as the released code on CUB)",
            choices=("train", "all"),
        ),
    )
    eval_split: str = field(
        default="test",
        metadata=meta(
            "split segmentation is scored on (paper Table 4: training data)",
            choices=("train", "val", "test", "all"),
        ),
    )
    eval_protocol: str = field(
        default="comgan",
        metadata=meta(
            "cub evaluation crop: comgan = full image, shorter side 152/128·R, centre crop R; "
            "drc = 1.5× box crop stretched to R×R",
            choices=("comgan", "drc"),
        ),
    )
    use_masks: bool = field(
        default=True,
        metadata=meta(
            "read ground-truth masks where the layout has them (cub segmentations, flowers "
            "segmim, DRC's dogs/cars release); false = generation only"
        ),
    )


@dataclass
class ModelParams:
    kind: str = field(
        default="ds_comgan",
        metadata=meta(
            "generator",
            choices=("simplegan", "pi1", "pi2", "comgan", "comgan_info", "ds_comgan"),
        ),
    )
    z_dim: int = field(default=100, metadata=meta("latent z size", min=1))
    z_scale: float = field(
        default=4.0, metadata=meta("z ~ N(0, 1) times this (the released code uses 4)", min=0.0)
    )
    num_codes: int = field(default=10, metadata=meta("N, size of the one-hot f and b", min=1))
    tied_codes: bool = field(
        default=False, metadata=meta("b = f, as the released code does (paper: independent)")
    )
    gen_width: int = field(
        default=128,
        metadata=meta(
            "trunk width at 4x4, halved by each upsampling block; the heads work on the last"
            " width (the released code: 16 channels; 128 gives 16 at 32 px; docs/FINDINGS.md)",
            min=8,
        ),
    )
    disc_width: int = field(
        default=64, metadata=meta("discriminator base width (the released code: 64)", min=8)
    )
    disc_init: str = field(
        default="orthogonal",
        metadata=meta(
            "D's initial weights: orthogonal (released code) or PyTorch's default",
            choices=("orthogonal", "default"),
        ),
    )
    head_blocks: int = field(
        default=3, metadata=meta("residual blocks in the F and B heads (reference: 3)", min=0)
    )
    info_width: int = field(
        default=64, metadata=meta("base width of the code classifiers Q_f and Q_b", min=4)
    )
    ds_head_factor: int = field(
        default=8,
        metadata=meta(
            "DS-ComGAN's M, F and B hidden width as a multiple of the trunk's last width "
            "(reference 8: 128 channels at 128 px)",
            min=1,
        ),
    )


@dataclass
class TrainParams:
    steps: int = field(default=3000, metadata=meta("stage-1 G+D steps", min=0))
    batch_size: int = field(default=32, metadata=meta("stage-1 batch size", min=1))
    lr: float = field(default=2e-4, metadata=meta("Adam learning rate", min=0.0, max=1.0))
    beta1: float = field(default=0.5, metadata=meta("Adam beta1", min=0.0, max=1.0))
    beta2: float = field(default=0.999, metadata=meta("Adam beta2", min=0.0, max=1.0))
    beta_binary: float = field(
        default=1.0,
        metadata=meta(
            "weight of L_binary (Eq. 11), on every stage-1 model with a mask; also on DS-ComGAN,"
            " whose Eq. 12 has none (without it its masks stay soft: docs/FINDINGS.md)",
            min=0.0,
        ),
    )
    info_weight: float = field(default=1.0, metadata=meta("weight of L_info", min=0.0))
    mask_floor: float = field(
        default=0.0,
        metadata=meta(
            "DS-ComGAN only: each mask below this share of its image pays log(floor / coverage)"
            " (0: off; this workbook's, not the paper's; 01 and 02 stay as the paper trains them)",
            min=0.0,
            max=1.0,
        ),
    )
    bg_swap: bool = field(
        default=False,
        metadata=meta(
            "DS-ComGAN only: also judge each composite over another sample's scene layer (B rolled"
            " by one in the batch) as a fake, so a scene layer that draws the object is seen"
            " (this workbook's, not the paper's; 01 and 02 stay as the paper trains them)"
        ),
    )
    ds_trunk_from: str = field(
        default="",
        metadata=meta(
            "DS-ComGAN only: the stage-1 run (in the same output folder) whose EMA feature"
            " generator Φ starts DS-ComGAN's Φ, e.g. comgan_beta1 (02's ComGAN); '' trains from"
            " scratch, as the paper does (this workbook's start, not the paper's)"
        ),
    )
    ema_decay: float = field(default=0.999, metadata=meta("EMA of G", min=0.0, max=1.0))
    checkpoint_every: int = field(default=500, metadata=meta("steps between checkpoints", min=1))
    log_every: int = field(default=50, metadata=meta("steps between log lines", min=1))
    precision: str = field(default="fp32", metadata=meta("numeric precision", choices=PRECISIONS))
    flip: bool = field(default=True, metadata=meta("random horizontal flips of real images"))
    channels_last: bool = field(
        default=False, metadata=meta("channels-last memory format for G, D, Q (same math)")
    )
    compile: bool = field(
        default=False,
        metadata=meta(
            "torch.compile G, D and Q (falls back to eager, with a warning, if unusable)"
        ),
    )
    cudnn_benchmark: bool = field(
        default=False, metadata=meta("let cuDNN pick the fastest convolutions (CUDA, both stages)")
    )
    fused_adam: bool = field(
        default=False, metadata=meta("the fused Adam kernel (same update up to rounding)")
    )
    sync_batchnorm: bool = field(
        default=False,
        metadata=meta("several GPUs (torchrun): batch norm over the global batch (CUDA only)"),
    )
    baseline_steps: int | None = field(
        default=None,
        metadata=meta("steps of each Fig. 2 comparison run in 01 (null: train.steps)", min=1),
    )
    main_steps: int | None = field(
        default=None,
        metadata=meta(
            "steps of the model 03 trains for 04 and 06 (DS-ComGAN or ComGAN + L_info, after"
            " model.kind; null: train.steps)",
            min=1,
        ),
    )
    ladder_steps: int | None = field(
        default=None,
        metadata=meta(
            "steps at which every Table 2 row is compared (a snapshot; null: train.steps)", min=1
        ),
    )


@dataclass
class SegmentParams:
    steps: int = field(default=2000, metadata=meta("stage-2 S+D_m steps", min=0))
    batch_size: int = field(default=32, metadata=meta("stage-2 batch size", min=1))
    lr: float = field(default=2e-4, metadata=meta("Adam learning rate", min=0.0, max=1.0))
    cons_weight: float = field(default=2.0, metadata=meta("lambda of L_cons (Eq. 10)", min=0.0))
    cons_loss: str = field(
        default="l1",
        metadata=meta(
            "L_cons distance: l1 = Eq. 10 (the paper, the released code); bce = binary cross-"
            "entropy from S's logits (a stronger gradient where S is confidently wrong)",
            choices=("l1", "bce"),
        ),
    )
    input_norm: bool = field(
        default=False,
        metadata=meta(
            "standardise each image per channel inside S (the same input for real images and "
            "for a generator's paler ones)"
        ),
    )
    adv_weight: float = field(
        default=1.0,
        metadata=meta("weight of D_m's adversarial term in S's loss (Eq. 9; 0 = no D_m)", min=0.0),
    )
    self_train_steps: int = field(
        default=0,
        metadata=meta(
            "stage 2b (this workbook, not the paper): steps of S on the real training images "
            "with its own colour-EM masks as targets (comgan_lib.self_train); 0 = off",
            min=0,
        ),
    )
    self_train_rounds: int = field(
        default=1,
        metadata=meta(
            "stage-2b rounds: each starts from the previous round's S and re-draws its targets "
            "from it (self_train_steps steps each)",
            min=1,
        ),
    )
    self_train_border_flip: bool = field(
        default=False,
        metadata=meta(
            "stage 2b: flip each target that covers more than half of the image border (the "
            "border rule per image, for objects inside the frame; comgan_lib.orientation)"
        ),
    )
    width: int = field(default=32, metadata=meta("U-Net base width", min=4))
    depth: int | None = field(
        default=None,
        metadata=meta("U-Net stages (null: from the resolution, 4 at 32 px, 5 from 64 px)", min=2),
    )
    disc_width: int = field(default=32, metadata=meta("mask discriminator D_m base width", min=4))
    checkpoint_every: int = field(default=500, metadata=meta("steps between checkpoints", min=1))
    log_every: int = field(default=50, metadata=meta("steps between log lines", min=1))
    precision: str = field(default="fp32", metadata=meta("numeric precision", choices=PRECISIONS))
    orientation_samples: int = field(
        default=512, metadata=meta("samples that decide whether M is fg or bg", min=1)
    )
    channels_last: bool = field(
        default=False, metadata=meta("channels-last memory format for S and D_m (same math)")
    )
    compile: bool = field(
        default=False,
        metadata=meta("torch.compile S and D_m (falls back to eager, with a warning, if unusable)"),
    )


@dataclass
class EvalParams:
    threshold: float = field(default=0.5, metadata=meta("mask threshold", min=0.0, max=1.0))
    fid_samples: int = field(default=2000, metadata=meta("samples for FID/IS", min=2))
    inception_weights: str | None = field(
        default=None, metadata=meta("local Inception weights file for torch-fidelity")
    )
    grid_size: int = field(default=8, metadata=meta("images per figure row", min=1, max=64))
    oracle_steps: int = field(
        default=1500,
        metadata=meta("training steps of the oracle segmenter (evaluation only)", min=1),
    )
    fidelity_samples: int = field(
        default=1000, metadata=meta("generated samples scored against the oracle", min=2)
    )
    domain_steps: int = field(
        default=800,
        metadata=meta("training steps of the domain classifier (synthetic FID/IS features)", min=1),
    )
    batch_size: int = field(default=64, metadata=meta("evaluation batch size", min=1))


@dataclass
class OutputParams:
    root: str = field(default="outputs", metadata=meta("where run folders are written"))
    html: bool = field(default=True, metadata=meta("also write an HTML copy of each notebook"))


@dataclass
class Params:
    run: RunParams
    data: DataParams
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    eval: EvalParams = field(default_factory=EvalParams)
    output: OutputParams = field(default_factory=OutputParams)
    source: str = field(default="", metadata=meta("the file these were read from (not a key)"))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


_INTERNAL = {"source"}


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "integer", float: "number", bool: "true/false", str: "text"}.get(tp, str(tp))


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _check_type(value: Any, tp, where: str) -> Any:
    """Return ``value`` converted to ``tp`` where lossless, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be {_a(_type_name(tp))}, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_check_type(v, item_tp, where) for v in value]
    if tp is float and isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
        value = float(value)  # PyYAML reads "5e-4" (no dot) as a string: YAML 1.1 wants "5.0e-4"
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(f"{where} must be {_a(_type_name(tp))}, got {value!r}")
    return float(value) if tp is float else value


def _check_constraints(value: Any, md: dict, where: str) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None:
            continue
        if "choices" in md and item not in md["choices"]:
            allowed = ", ".join(map(str, md["choices"]))
            raise ConfigError(f"{where} is {item!r}; allowed: {allowed}")
        if "min" in md and item < md["min"]:
            raise ConfigError(f"{where} is {item}; it must be at least {md['min']}")
        if "max" in md and item > md["max"]:
            raise ConfigError(f"{where} is {item}; it must be at most {md['max']}")


def _all_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key of ``cls``, sections and their fields."""
    hints = typing.get_type_hints(cls)  # field types are strings under postponed annotations
    keys = []
    for f in dataclasses.fields(cls):
        if f.name in _INTERNAL:
            continue
        key = f"{prefix}{f.name}"
        keys.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _all_keys(hints[f.name], key + ".")
    return keys


def _build(cls, raw: Any, source: str, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, validating every key and value."""
    hints = typing.get_type_hints(cls)
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {section} must be a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _INTERNAL}
    for key in raw:
        if key not in fields:
            full = f"{prefix}{key}"
            # A sibling in the same section first, then any key anywhere (a misplaced key).
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            close = [f"{prefix}{c}" for c in close]
            if not close:
                close = difflib.get_close_matches(full, _all_keys(Params), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            allowed = ", ".join(fields)
            raise ConfigError(
                f"{source}: unknown key '{full}'{hint} (keys of {section}: {allowed})"
            )
    values = {}
    for name, f in fields.items():
        key, tp = f"{prefix}{name}", hints[name]
        where = f"{source}: '{key}'"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                what = f.metadata.get("help", "a section")
                raise ConfigError(f"{source}: missing required key '{key}' ({what})")
            continue
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, raw[name], source, key + ".")
            continue
        value = _check_type(raw[name], tp, where)
        _check_constraints(value, f.metadata, where)
        values[name] = value
    return cls(**values)


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.steps=200"`` -> ``("train.steps", 200)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key=value, e.g. --set train.steps=200")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: the value is not valid YAML ({exc.problem})") from None
    return key.strip(), value


def _cross_checks(p: Params) -> None:
    src = p.source
    if p.data.kind == "folder":
        if not p.data.root:
            raise ConfigError(f"{src}: 'data.root' is required when data.kind is folder")
        root = Path(p.data.root)
        if not root.is_dir():
            raise ConfigError(f"{src}: 'data.root' folder not found: {root}")
    if p.data.kind == "synthetic" and not 32 <= p.data.resolution <= 128:
        raise ConfigError(
            f"{src}: 'data.resolution' is {p.data.resolution}; "
            "the synthetic dataset allows 32 to 128"
        )
    if p.data.kind == "synthetic":
        from comgan_lib.data.synthetic import variant_classes

        max_species, max_scenes = map(len, variant_classes(p.data.variant))
        if p.data.num_species > max_species or p.data.num_scenes > max_scenes:
            raise ConfigError(
                f"{src}: the synthetic {p.data.variant} variant has {max_species} species and "
                f"{max_scenes} scenes; 'data.num_species' is {p.data.num_species} and "
                f"'data.num_scenes' {p.data.num_scenes}"
            )
    is_scenery = p.data.kind == "synthetic" and p.data.variant == "scenery"
    for key in ("camouflage", "extra_scene_colours"):  # the scenery variant's own knobs
        if getattr(p.data, key) > 0 and not is_scenery:
            raise ConfigError(
                f"{src}: 'data.{key}' applies to the synthetic scenery variant only; "
                f"data.kind is {p.data.kind} (variant {p.data.variant})"
            )
    _data_split_checks(p)
    _network_checks(p)
    if p.eval.inception_weights and not Path(p.eval.inception_weights).is_file():
        raise ConfigError(
            f"{src}: 'eval.inception_weights' file not found: {p.eval.inception_weights}"
        )


def _network_checks(p: Params) -> None:
    """What the networks would refuse later (a notebook in), refused here before the run."""
    src, res, m = p.source, p.data.resolution, p.model
    if res & (res - 1):
        raise ConfigError(
            f"{src}: 'data.resolution' is {res}; the generators need a power of two "
            "(16, 32, 64, 128, ...)"
        )
    n_up = res.bit_length() - 3  # upsampling blocks from 4x4 to the resolution
    if m.gen_width % 2**n_up or m.gen_width // 2**n_up < 4:
        raise ConfigError(
            f"{src}: 'model.gen_width' is {m.gen_width}; at resolution {res} it is halved {n_up} "
            f"times down to at least 4 channels: use a multiple of {2**n_up}, at least "
            f"{4 * 2**n_up}"
        )
    if res < 32 and (m.kind == "ds_comgan" or "03_disentanglement" in p.run.notebooks):
        raise ConfigError(
            f"{src}: 'data.resolution' is {res}; DS-ComGAN (model.kind ds_comgan, and notebook "
            "03) needs at least 32"
        )
    depth = p.segment.depth
    if depth is not None and res % 2 ** (depth - 1):
        raise ConfigError(
            f"{src}: 'segment.depth' is {depth}; it needs a resolution divisible by "
            f"{2 ** (depth - 1)} (data.resolution is {res})"
        )


# Splits each data.kind offers. A paper dataset's unset or missing data.root is deliberately not
# checked here: its parameter file must load (to inspect or override it), and the data check
# (python -m comgan_lib.data.check, run by the runner first) reports it with what to download.
_SPLITS_OF_KIND = {
    "synthetic": ("train", "test"),
    "folder": ("train", "test", "all"),
    "clevr6": ("train", "test", "all"),
    "class_folders": ("train", "val", "test", "all"),
    "cub": ("train", "val", "test", "all"),
    "stanford_dogs": ("train", "test", "all"),
    "stanford_cars": ("train", "test", "all"),
    "flowers": ("train", "val", "test", "all"),
}


def _data_split_checks(p: Params) -> None:
    d, src = p.data, p.source
    if d.split_scheme == "redo" and d.kind not in ("cub", "flowers"):
        raise ConfigError(
            f"{src}: 'data.split_scheme' is redo; only cub and flowers have a ReDO split "
            f"(data.kind is {d.kind}: use official)"
        )
    allowed = _SPLITS_OF_KIND[d.kind]
    if d.kind == "cub" and d.split_scheme == "official":
        allowed = ("train", "test", "all")
    for key in ("train_split", "eval_split"):
        value = getattr(d, key)
        if value not in allowed:
            scheme = f" with split_scheme {d.split_scheme}" if d.kind == "cub" else ""
            raise ConfigError(
                f"{src}: 'data.{key}' is {value!r}; data.kind {d.kind}{scheme} has the splits "
                f"{', '.join(allowed)}"
            )


def _resolve_paths(params: Params, base: Path | None) -> None:
    """Make file paths absolute: relative to the params file's folder (else the current one)."""
    base = base or Path.cwd()
    for section, key in (("data", "root"), ("eval", "inception_weights"), ("output", "root")):
        obj = getattr(params, section)
        value = getattr(obj, key)
        if value and not Path(value).expanduser().is_absolute():
            if section == "output" and value == OutputParams.root:
                continue  # the default outputs/ folder belongs to the project, see run_dir()
            setattr(obj, key, str((base / Path(value).expanduser()).resolve()))


def params_from_dict(raw: dict, source: str = "<dict>", overrides=(), base: Path | None = None):
    """Validate a raw mapping (as read from YAML) plus ``key=value`` overrides into ``Params``.

    The mapping is validated on its own first, so its errors name ``source``; then each override
    is applied and validated in turn, so its errors name the override.
    """
    raw = _copy_tree(raw or {})
    run = raw.get("run", {})
    if isinstance(run, dict) and "name" not in run and source.endswith((".yaml", ".yml")):
        raw["run"] = {**run, "name": Path(source).stem}
    params = _build(Params, raw, source)
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value, f"--set {text}")
        params = _build(Params, _copy_tree(raw), f"--set {text}")
    params.source = source
    _resolve_paths(params, base)
    _cross_checks(params)
    return params


def _copy_tree(raw):
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in raw.items()}


def load_params(path: str | Path, overrides=()) -> Params:
    """Load, override and validate a parameter file. Raises ConfigError with one clear line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at} ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the file must hold a mapping of sections, got {type(raw).__name__}"
        )
    return params_from_dict(raw, str(path), overrides, base=path.resolve().parent)


def save_params(params: Params, path: str | Path) -> None:
    """Write the resolved parameters as YAML (what the run actually used)."""
    Path(path).write_text(yaml.safe_dump(params.to_dict(), sort_keys=False))


def add_override_argument(parser) -> None:
    """The ``--set KEY=VALUE`` option shared by every command that reads a parameter file."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter by dotted key, e.g. --set train.steps=200 (repeatable)",
    )


def describe_params() -> str:
    """Every key with its type, default and constraint, one line each (for docs and ``--help``)."""
    lines = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _INTERNAL:
                continue
            tp, key = hints[f.name], prefix + f.name
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".")
                continue
            if f.default is not dataclasses.MISSING:
                default = f"default {f.default!r}"
            elif f.default_factory is not dataclasses.MISSING:
                default = f"default {f.default_factory()!r}"
            else:
                default = "required"
            extra = [f"{k} {f.metadata[k]}" for k in ("choices", "min", "max") if k in f.metadata]
            lines.append(
                f"{key}: {_type_name(tp)}, {default}"
                + (f", {', '.join(extra)}" if extra else "")
                + f" — {f.metadata['help']}"
            )

    walk(Params, "")
    return "\n".join(lines)
