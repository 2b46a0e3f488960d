"""A domain feature extractor for the embedded synthetic dataset: an evaluation instrument.

Inception features need a 100 MB download this workbook never makes, and they describe ImageNet,
not 32-pixel blobs over procedural scenes. The synthetic dataset knows each image's foreground
*species* and background *scene*, so a small CNN trained on those labels gives features made for
this domain. It is trained offline in seconds on the CPU, checkpointed in the run folder, and
registered with torch-fidelity as the feature extractor ``"comgan-domain-classifier"``::

    net, info = train_domain_classifier(params, run)      # or reloaded from the checkpoint
    torch_fidelity.calculate_metrics(
        input1=..., input2=..., fid=True, isc=True,
        feature_extractor=DOMAIN_EXTRACTOR, feature_extractor_weights_path=info["checkpoint"],
        feature_layer_fid="features", feature_layer_isc="logits_joint")

Feature layers (inputs are uint8 [N, 3, H, W], as torch-fidelity passes them):

- ``features``: the penultimate activations (global average pool of the last stage), for FID/KID.
- ``logits_species`` / ``logits_scene``: each head's logits.
- ``logits_joint``: log p(species | x) + log p(scene | x) over the species x scene grid, i.e. the
  two heads' predictions taken as independent. The softmax of this vector is the joint
  distribution p(s, b | x) = p(s | x) p(b | x), so torch-fidelity's Inception Score on this layer
  is the *classifier score over the joint*: exp E_x KL(p(s, b | x) || p(s, b)). It is at most
  num_species x num_scenes, reached when every image is classified confidently and the samples
  cover every (species, scene) pair equally. ``fidelity.fid_is`` also reports each head's score.

Training also shows the species head the foreground layers F and the scene head the background
layers B of the synthetic items, so ``classify`` can score a generator's F and B outputs on their
own (a Q_f / Q_b-like check of what f and b capture).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from comgan_lib.config import Params
from comgan_lib.data import build_dataset
from comgan_lib.rundir import RunDir, save_torch_atomic

DOMAIN_EXTRACTOR = "comgan-domain-classifier"
DOMAIN_LAYERS = ("features", "logits_joint", "logits_species", "logits_scene")
CHECKPOINT_NAME = "domain_classifier.pt"


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (any float dtype and device) to uint8 in [0, 255] on the CPU."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] back to float in [-1, 1]."""
    return images.float() / 127.5 - 1


class DomainClassifier(nn.Module):
    """A small CNN with a species head and a scene head; inputs in [-1, 1].

    Stride-2 stages take the image down to about 4x4 (three stages at 32 px); channels double from
    ``width`` up to 128 (16, 32, 64 at 32 px: 64-d features). Inputs of another size are resized
    to ``resolution`` first.
    """

    def __init__(self, resolution: int, num_species: int, num_scenes: int, width: int = 16):
        super().__init__()
        self.resolution, self.num_species, self.num_scenes = resolution, num_species, num_scenes
        self.width = width
        stages = max(1, int(math.log2(resolution / 4)))
        layers, c_in = [], 3
        for i in range(stages):
            c = min(width * 2**i, 128)
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        self.trunk = nn.Sequential(*layers)
        self.feature_dim = c_in
        self.species_head = nn.Linear(c_in, num_species)
        self.scene_head = nn.Linear(c_in, num_scenes)

    @property
    def spec(self) -> dict:
        return {
            "resolution": self.resolution,
            "num_species": self.num_species,
            "num_scenes": self.num_scenes,
            "width": self.width,
        }

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(penultimate features [N, C], species logits [N, S], scene logits [N, B])."""
        if x.shape[-2:] != (self.resolution, self.resolution):
            size = (self.resolution, self.resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        h = self.trunk(x).mean(dim=(2, 3))
        return h, self.species_head(h), self.scene_head(h)


def joint_logits(species_logits: torch.Tensor, scene_logits: torch.Tensor) -> torch.Tensor:
    """log p(s | x) + log p(b | x) flattened over the species x scene grid [N, S * B]."""
    ls, lb = species_logits.log_softmax(1), scene_logits.log_softmax(1)
    return (ls[:, :, None] + lb[:, None, :]).flatten(1)


def load_domain_classifier(path: str | Path, map_location="cpu") -> DomainClassifier:
    """The classifier saved by ``train_domain_classifier``, in eval mode."""
    state = torch.load(path, map_location=map_location, weights_only=False)
    net = DomainClassifier(**state["spec"]["net"])
    net.load_state_dict(state["net"])
    return net.eval()


def domain_status(params: Params) -> tuple[bool, str]:
    """Whether domain features exist for this dataset: only the synthetic one has the labels."""
    if params.data.kind != "synthetic":
        return False, (
            f"domain features not run: they need species and scene labels, which only the "
            f"synthetic dataset has (data.kind is {params.data.kind}); use Inception features "
            f"(eval.inception_weights)"
        )
    return True, "domain classifier trained on the synthetic dataset's species and scene labels"


def _stack_uint8(dataset, layers: bool, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Images (and the F / B layers) as uint8, labels as int64; uint8 keeps 128 px sets small."""
    keys = ("image", "foreground", "background") if layers else ("image",)
    parts: dict[str, list] = {k: [] for k in (*keys, "fg_class", "bg_class")}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if "fg_class" not in batch or "bg_class" not in batch:
            raise ValueError("the domain classifier needs items with fg_class and bg_class labels")
        for k in keys:
            parts[k].append(to_uint8(batch[k]))
        parts["fg_class"].append(batch["fg_class"].long())
        parts["bg_class"].append(batch["bg_class"].long())
    return {k: torch.cat(v) for k, v in parts.items()}


def _flip_half(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = x.clone()
    x[flip] = x[flip].flip(-1)
    return x


def train_domain_classifier(
    params: Params,
    run: RunDir,
    steps: int | None = None,
    batch_size: int = 32,
    lr: float = 2e-3,
    width: int = 16,
    layers: bool = True,
    progress: bool = False,
) -> tuple[DomainClassifier, dict]:
    """Train (or reload from ``checkpoints/domain_classifier.pt``) the domain classifier.

    Each step shows one batch of composite images to both heads and, with ``layers``, one batch of
    foreground layers to the species head and one of background layers to the scene head.
    ``steps`` defaults to ``params.eval.domain_steps``. Returns the network in eval mode and
    ``info``: checkpoint path, steps, training seconds (of the run that trained it), whether it
    was reloaded, and held-out accuracies on the test split (composites; F and B layers).
    """
    ok, reason = domain_status(params)
    if not ok:
        raise ValueError(reason)
    steps = params.eval.domain_steps if steps is None else steps
    d = params.data
    net_spec = {
        "resolution": d.resolution,
        "num_species": d.num_species,
        "num_scenes": d.num_scenes,
        "width": width,
    }
    spec = {
        "net": net_spec,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "layers": layers,
        "data": {"seed": d.seed, "train_size": d.train_size, "test_size": d.test_size},
        "seed": params.run.seed,
    }
    path = run.path("checkpoints", CHECKPOINT_NAME)
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("spec") == spec:
            net = load_domain_classifier(path)
            return net, {**state["info"], "checkpoint": str(path), "reloaded": True}

    torch.manual_seed(params.run.seed + 29)
    net = DomainClassifier(**net_spec)
    train = _stack_uint8(build_dataset(params, "train", return_layers=layers), layers)
    gen = torch.Generator().manual_seed(params.run.seed + 29)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    n, b = len(train["image"]), batch_size
    start = time.perf_counter()
    net.train()
    for step in range(steps):
        idx = torch.randint(n, (3 if layers else 1, b), generator=gen)
        x = [train["image"][idx[0]]]
        if layers:
            x += [train["foreground"][idx[1]], train["background"][idx[2]]]
        x = _flip_half(from_uint8(torch.cat(x)), gen)
        _, species, scene = net(x)
        loss = F.cross_entropy(species[:b], train["fg_class"][idx[0]])
        loss = loss + F.cross_entropy(scene[:b], train["bg_class"][idx[0]])
        if layers:
            loss = loss + F.cross_entropy(species[b : 2 * b], train["fg_class"][idx[1]])
            loss = loss + F.cross_entropy(scene[2 * b :], train["bg_class"][idx[2]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress and (step + 1) % 100 == 0:
            print(f"domain classifier step {step + 1}/{steps}: loss {loss.item():.3f}")
    seconds = time.perf_counter() - start
    net.eval()
    info = {
        "steps": steps,
        "train_seconds": round(seconds, 2),
        "train_images": n,
        "held_out": held_out_accuracy(net, params),
    }
    save_torch_atomic({"spec": spec, "net": net.state_dict(), "info": info}, path)
    return net, {**info, "checkpoint": str(path), "reloaded": False}


def held_out_accuracy(net: DomainClassifier, params: Params) -> dict:
    """Accuracies on the test split: composites (both heads), F layers (species), B (scene)."""
    test = _stack_uint8(build_dataset(params, "test", return_layers=True), layers=True)
    acc = {}
    for key, what in (("image", "image"), ("foreground", "F"), ("background", "B")):
        species, scene = classify(net, from_uint8(test[key]))
        if key != "background":
            acc[f"species_{what}"] = (species.argmax(1) == test["fg_class"]).float().mean().item()
        if key != "foreground":
            acc[f"scene_{what}"] = (scene.argmax(1) == test["bg_class"]).float().mean().item()
    acc["chance_species"] = 1 / net.num_species
    acc["chance_scene"] = 1 / net.num_scenes
    acc["n_test"] = len(test["image"])
    return acc


@torch.no_grad()
def classify(
    net: DomainClassifier, images: torch.Tensor, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """(species logits [N, S], scene logits [N, B]) on the CPU for images in [-1, 1].

    Works on composites and on a generator's F and B layers (the heads saw both in training).
    """
    net.eval()
    device = next(net.parameters()).device
    species, scene = [], []
    for i in range(0, len(images), batch_size):
        _, s, b = net(images[i : i + batch_size].to(device, torch.float32))
        species.append(s.cpu())
        scene.append(b.cpu())
    return torch.cat(species), torch.cat(scene)


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity's view of the domain classifier; ``feature_extractor_weights_path`` is the
    checkpoint written by ``train_domain_classifier``. Inputs: uint8 [N, 3, H, W]."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(
                f"feature extractor {name} needs feature_extractor_weights_path: the checkpoint "
                f"written by train_domain_classifier (checkpoints/{CHECKPOINT_NAME})"
            )
        self.net = load_domain_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
            raise ValueError(f"expected uint8 images [N, 3, H, W], got {getattr(x, 'shape', x)}")
        h, species, scene = self.net(from_uint8(x))
        out = {
            "features": h,
            "logits_species": species,
            "logits_scene": scene,
            "logits_joint": joint_logits(species, scene),
        }
        return tuple(out[name].float() for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return DOMAIN_LAYERS

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits_joint", "fid": "features", "kid": "features", "prc": "features"}[
            metric
        ]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)


if DOMAIN_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(DOMAIN_EXTRACTOR, DomainFeatureExtractor)
