"""FID and IS through torch-fidelity, with Inception features or the synthetic domain's own.

Usage::

    real, label = training_images(params)                 # the real set: the training images
    s = sample(G, params.eval.fid_samples)                 # comgan_lib.train.sample
    fid_is(s["image"], real, params, cache_root=fidelity_cache_root(run), real_label=label)
    # -> {"status": "ok", "fid": 41.2, "is": 3.1, "is_std": 0.1, "features": "inception", ...}
    #    or {"status": "not run", "reason": "... set eval.inception_weights ...", "fid": None, ...}

    net, info = train_domain_classifier(params, run)       # comgan_lib.metrics.domain
    fid_is(s["image"], real, params, features="domain", domain_checkpoint=info["checkpoint"])

The paper's numbers use Inception features; torch-fidelity downloads their weights on first use,
which this workbook never does. ``eval.inception_weights`` names a local copy (else a copy already
in torch's hub cache is used); without one, ``fid_is`` returns a "not run" result whose reason
says what to set, and ``inception_status(params)`` lets a notebook say so before computing
anything. On the embedded synthetic dataset, ``features="domain"`` scores with a small classifier
trained on the dataset's species and scene labels (see ``metrics.domain``): numbers that exist
offline, always labelled ``"features": "domain"`` so they are never mistaken for Inception FIDs.

Caching: torch-fidelity caches features under a *name*, not a content hash. Only the real set is
cached here, under a name made from a hash of its pixels and of the weights file, so one cache
root can be shared by every evaluation of a run (the training images' features are computed
once); ``cache_root=None`` turns caching off.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
import torch_fidelity
from torch.hub import get_dir as torch_hub_dir
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_isc import isc_features_to_metric

from comgan_lib.config import Params
from comgan_lib.data import build_dataset, stack_items
from comgan_lib.metrics.domain import (
    DOMAIN_EXTRACTOR,
    classify,
    domain_status,
    from_uint8,
    load_domain_classifier,
    to_uint8,
)
from comgan_lib.rundir import NOT_RUN, RunDir

INCEPTION_EXTRACTOR = "inception-v3-compat"
INCEPTION_FILE = URL_INCEPTION_V3.rsplit("/", 1)[-1]
FEATURES = ("inception", "domain")
# Feature layers per feature set: (FID layer, IS layer). Inception: torch-fidelity's defaults.
LAYERS = {"inception": ("2048", "logits_unbiased"), "domain": ("features", "logits_joint")}


class Uint8Images(Dataset):
    """Images in [-1, 1] [N, 3, H, W] served one by one as uint8 [3, H, W], as torch-fidelity
    expects. Converted once up front (uint8 is a quarter of float32's memory)."""

    def __init__(self, images: torch.Tensor, chunk: int = 1024):
        self.images = torch.cat(
            [to_uint8(images[i : i + chunk]) for i in range(0, len(images), chunk)]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]

    def content_hash(self) -> str:
        digest = hashlib.sha1(str(tuple(self.images.shape)).encode())
        digest.update(self.images.numpy().tobytes())
        return digest.hexdigest()[:16]


def default_inception_cache() -> Path:
    """Where torch-fidelity keeps the Inception weights it downloads (torch's hub cache)."""
    return Path(torch_hub_dir()) / "checkpoints" / INCEPTION_FILE


def inception_weights_path(params: Params) -> Path | None:
    """``eval.inception_weights`` if that file exists; if unset, torch's hub copy if there."""
    if params.eval.inception_weights:
        path = Path(params.eval.inception_weights).expanduser()
        return path if path.is_file() else None
    hub = default_inception_cache()
    return hub if hub.is_file() else None


def inception_status(params: Params) -> tuple[bool, str]:
    """(available, reason): whether Inception FID/IS can run, and a line saying why or why not."""
    path = inception_weights_path(params)
    if path is not None:
        where = "eval.inception_weights" if params.eval.inception_weights else "torch's hub cache"
        return True, f"Inception weights: {path} ({where})"
    how = (
        f"torch-fidelity downloads them from {URL_INCEPTION_V3} into {default_inception_cache()} "
        f"on first use, and this workbook never downloads; copy that file here from a machine "
        f"with internet and set eval.inception_weights to its path "
        f"(e.g. --set eval.inception_weights=/path/to/{INCEPTION_FILE})"
    )
    if params.eval.inception_weights:
        return False, (
            f"Inception FID/IS not run: eval.inception_weights file not found: "
            f"{params.eval.inception_weights}. {how}"
        )
    return (
        False,
        f"Inception FID/IS not run: no Inception weights (eval.inception_weights is unset); {how}",
    )


def not_run(reason: str, features: str) -> dict:
    """A result that says it was not computed, with the same number keys (None) as a real one."""
    return {
        "status": NOT_RUN,
        "reason": reason,
        "features": features,
        "fid": None,
        "is": None,
        "is_std": None,
    }


def training_images(params: Params, limit: int | None = None) -> tuple[torch.Tensor, str]:
    """The real set for FID: the training split (``data.train_split``) at training resolution,
    in [-1, 1], with a label for result tables, e.g. "train split, 4000 images, 32px"."""
    split = params.data.train_split
    images = stack_items(build_dataset(params, split, purpose="train"), limit=limit)["image"]
    return images, f"{split} split, {len(images)} images, {params.data.resolution}px"


def fidelity_cache_root(run: RunDir) -> Path:
    """The run's own torch-fidelity cache folder (features of its real set)."""
    return run.path("checkpoints", "fidelity_cache")


_FILE_HASHES: dict[tuple, str] = {}


def _file_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()[:12]
    return _FILE_HASHES[key]


def _use_cuda(params: Params) -> bool:
    return torch.cuda.is_available() and params.run.device != "cpu"


def fid_is(
    generated: torch.Tensor,
    real: torch.Tensor,
    params: Params,
    cache_root: str | Path | None = None,
    *,
    features: str = "inception",
    domain_checkpoint: str | Path | None = None,
    real_label: str | None = None,
    feature_layer_fid: str | None = None,
    verbose: bool = False,
) -> dict:
    """FID of ``generated`` against ``real`` and IS of ``generated``, through torch-fidelity.

    Args:
        generated: images in [-1, 1] [N, 3, H, W]; the first ``params.eval.fid_samples`` are used.
        real: the real set in [-1, 1] [M, 3, H, W], same size (``training_images(params)``).
        params: run parameters (``eval.fid_samples``, ``eval.inception_weights``,
            ``eval.batch_size``, ``run.device``).
        cache_root: torch-fidelity's cache folder for the real set's features (content-hashed
            names, see the module note); None: no caching.
        features: "inception" (torch-fidelity's InceptionV3: FID on its 2048-d pool features,
            IS on its logits) or "domain" (the synthetic dataset's classifier: FID on its
            penultimate features, IS = classifier score over the species x scene joint).
        domain_checkpoint: the domain classifier's checkpoint (``train_domain_classifier``'s
            ``info["checkpoint"]``); required with ``features="domain"``.
        real_label: what the real set is, for tables (``training_images`` returns one).
        feature_layer_fid: None for the standard layer ("2048" for Inception, "features" for the
            domain classifier). A smaller Inception layer ("64", "192", "768") is not the
            standard FID, but its covariance is cheaper: torch-fidelity's eigen-decomposition
            of the 2048-d covariance product takes several seconds on a CPU, per call.

    Returns ``{"status": "ok", "fid", "is", "is_std", "is_splits", "features", "feature_layer_fid",
    "feature_layer_is", "weights", "n_samples", "n_real", "real", "seconds"}`` (domain features
    add ``is_species`` and ``is_scene``, each head's own score), or ``not_run(...)``
    (``{"status": "not run", "reason", "features", "fid": None, "is": None, "is_std": None}``)
    when the Inception weights or the domain classifier are not available.
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if generated.dim() != 4 or generated.shape[1] != 3 or generated.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"generated {tuple(generated.shape)} and real {tuple(real.shape)} images must both be "
            f"[N, 3, H, W] with the same H and W (FID compares at the training resolution)"
        )
    if features == "inception":
        ok, reason = inception_status(params)
        if not ok:
            return not_run(reason, features)
        weights = inception_weights_path(params)
        extractor = INCEPTION_EXTRACTOR
    else:
        ok, reason = domain_status(params)
        if not ok:
            return not_run(reason, features)
        if domain_checkpoint is None:
            raise ValueError("features='domain' needs domain_checkpoint (train_domain_classifier)")
        weights = Path(domain_checkpoint)
        if not weights.is_file():
            return not_run(
                f"domain FID/IS not run: classifier checkpoint not found: {weights} "
                f"(train it with comgan_lib.metrics.domain.train_domain_classifier)",
                features,
            )
        extractor = DOMAIN_EXTRACTOR

    start = time.perf_counter()
    n = min(len(generated), params.eval.fid_samples)
    fake_set, real_set = Uint8Images(generated[:n]), Uint8Images(real)
    splits = max(1, min(10, n // 100))  # torch-fidelity's 10 splits from 1000 samples on
    layer_fid, layer_is = LAYERS[features]
    layer_fid = feature_layer_fid or layer_fid
    options = {
        "input1": fake_set,
        "input2": real_set,
        "fid": True,
        "isc": True,
        "feature_extractor": extractor,
        "feature_layer_fid": layer_fid,
        "feature_layer_isc": layer_is,
        "feature_extractor_weights_path": str(weights),
        "isc_splits": splits,
        "batch_size": params.eval.batch_size,
        "cuda": _use_cuda(params),
        "save_cpu_ram": True,  # no DataLoader workers: the images are already in memory
        "verbose": verbose,
        "cache": cache_root is not None,
    }
    if cache_root is not None:
        options["cache_root"] = str(cache_root)
        options["input2_cache_name"] = f"real-{real_set.content_hash()}-{_file_hash(weights)}"
    metrics = torch_fidelity.calculate_metrics(**options)
    result = {
        "status": "ok",
        "fid": float(metrics["frechet_inception_distance"]),
        "is": float(metrics["inception_score_mean"]),
        "is_std": float(metrics["inception_score_std"]),
        "is_splits": splits,
        "features": features,
        "feature_layer_fid": layer_fid,
        "feature_layer_is": layer_is,
        "weights": str(weights),
        "n_samples": n,
        "n_real": len(real_set),
        "real": real_label or f"{len(real_set)} real images, {real.shape[-1]}px",
    }
    if features == "domain":
        net = load_domain_classifier(weights)
        species, scene = classify(net, from_uint8(fake_set.images))  # what torch-fidelity saw
        for name, logits in (("is_species", species), ("is_scene", scene)):
            result[name] = isc_features_to_metric(logits, splits)["inception_score_mean"]
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result
