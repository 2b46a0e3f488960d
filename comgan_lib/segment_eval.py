"""Scoring the stage-2 segmenter on ground-truth masks (Sec. 4.4, Table 4): IoU and Dice.

``evaluate_segmenter(params, run)`` loads S (``comgan_lib.stage2``), segments the dataset's
train and test splits (``data.train_split``, ``data.eval_split``) and scores the masks under both
protocols of ``comgan_lib.metrics.masks`` (max-flip, as ReDO and the released ComGAN code;
foreground-only, as DRC), per-image means at ``eval.threshold``, with the training-free
reference predictors scored on the same images for scale. The paper's Table 4 scores training
data ("segmentation results on training data").

``score_on_generated`` scores S on the generator's own images instead: against the generator's
masks (what S was taught) and, given the oracle of notebook 02, against the oracle's segmentation
beside the generator's masks. Read with the real-image scores it says where S loses: learning its
teacher, the teacher's own quality, or the gap between generated and real images.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.metrics.colour_em import colour_em
from comgan_lib.metrics.image_stats import image_statistics
from comgan_lib.metrics.masks import (
    PROTOCOLS,
    TRAINING_FREE_PREDICTORS,
    coverage,
    score_masks_per_image,
)
from comgan_lib.nets.segmenter import UNet
from comgan_lib.oracle import predict as oracle_predict
from comgan_lib.orientation import foreground_mask
from comgan_lib.rundir import RunDir
from comgan_lib.runtime import pick_device
from comgan_lib.stage2 import DEFAULT_NAME, load_segmenter, predict_masks
from comgan_lib.train import sample


def _mean_scores(per_image: list[dict], extra: dict | None = None) -> dict:
    out = {
        protocol: {
            metric: float(torch.cat([p[protocol][metric] for p in per_image]).mean())
            for metric in ("iou", "dice")
        }
        for protocol in PROTOCOLS
    }
    out["n_images"] = int(sum(len(p["foreground"]["iou"]) for p in per_image))
    return out | (extra or {})


def _score_split(params: Params, split: str, net: UNet, threshold: float, limit, progress):
    """Scores of S and of the training-free predictors on one split, or None without masks."""
    from torch.utils.data import DataLoader, Subset

    from comgan_lib.data import build_dataset

    dataset = build_dataset(params, split, purpose="eval")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    loader = DataLoader(
        Subset(dataset, range(n)),
        batch_size=params.eval.batch_size,
        shuffle=False,
        num_workers=params.data.num_workers,
    )
    ours, refined, free = [], [], {k: [] for k in TRAINING_FREE_PREDICTORS}
    pred_cov, gt_cov = [], []
    for batch in tqdm(loader, desc=f"score {split}", disable=not progress, leave=False):
        if "mask" not in batch:
            return None
        images, gt = batch["image"], batch["mask"]
        pred = predict_masks(net, images, batch_size=params.eval.batch_size)
        ours.append(score_masks_per_image(pred, gt, threshold))
        refined.append(score_masks_per_image(colour_em(images, pred), gt, threshold))
        pred_cov.append(coverage(pred, threshold))
        gt_cov.append(coverage(gt))
        for key, predictor in TRAINING_FREE_PREDICTORS.items():
            free[key].append(score_masks_per_image(predictor(images), gt, threshold))
    if not ours:
        raise UserError(f"split '{split}' of data.kind {params.data.kind} has no images")
    extra = {
        "split": split,
        "pred_coverage_mean": float(torch.cat(pred_cov).mean()),
        "gt_coverage_mean": float(torch.cat(gt_cov).mean()),
        "colour_em": _mean_scores(refined),
    }
    return _mean_scores(ours, extra), {k: _mean_scores(v) for k, v in free.items()}


def evaluate_segmenter(
    params: Params,
    run: RunDir,
    name: str = DEFAULT_NAME,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """IoU and Dice of S on the dataset's ground-truth masks, both protocols, both splits.

    "train" is ``data.train_split`` and "test" is ``data.eval_split`` (the paper's Table 4 scores
    training data), both in the evaluation preparation (``purpose="eval"``), at most ``limit``
    images each. Per-image means, foreground = ``S(x) >= eval.threshold``. ``colour_em`` scores
    S's masks after the per-image colour refinement of ``comgan_lib.metrics.colour_em`` (a
    post-hoc step of this workbook, not the paper's). The training-free predictors are scored on
    the same images. Returns::

        {"train": {"max_flip": {"iou", "dice"}, "foreground": {"iou", "dice"}, "n_images",
                   "split", "pred_coverage_mean", "gt_coverage_mean",
                   "colour_em": {"max_flip", "foreground", "n_images"}},
         "test": {...},
         "training_free": {"train": {predictor: {"max_flip", "foreground", "n_images"}},
                           "test": {...}},
         "generator", "orientation", "segmenter_step", "threshold", "protocols", "has_masks",
         "note"}

    Without ground-truth masks ``has_masks`` is False, the scores are None and ``note`` says so.
    """
    device = pick_device(params.run.device)
    net, info = load_segmenter(run, name, device)
    if info["spec"]["resolution"] != params.data.resolution:
        raise UserError(
            f"the segmenter is {info['spec']['resolution']}px, data.resolution is "
            f"{params.data.resolution}"
        )
    threshold = params.eval.threshold
    out: dict = {
        "train": None,
        "test": None,
        "training_free": {"train": None, "test": None},
        "generator": info["generator"],
        "orientation": info["orientation"],
        "segmenter_step": info["step"],
        "threshold": threshold,
        "protocols": dict(PROTOCOLS),
        "has_masks": True,
        "note": "",
    }
    done: dict = {}
    for role, split in (("train", params.data.train_split), ("test", params.data.eval_split)):
        if split not in done:
            done[split] = _score_split(params, split, net, threshold, limit, progress)
        if done[split] is None:
            out["has_masks"] = False
            out["note"] = (
                f"data.kind {params.data.kind} has no ground-truth masks for split '{split}'; "
                "segmentation scoring skipped"
            )
            continue
        out[role], out["training_free"][role] = done[split]
    return out


def score_on_generated(
    net: UNet,
    G,
    orientation: str,
    oracle: UNet | None = None,
    n: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict:
    """S on ``n`` generated images (foreground-only IoU and Dice, per-image means).

    ``s_vs_generator``: S's masks against the generator's masks in ``orientation`` (how well S
    learnt what it was taught); ``image_statistics`` of the generated images
    (``comgan_lib.metrics.image_stats``). With ``oracle``: ``s_vs_oracle`` and
    ``generator_vs_oracle``, S's and the generator's masks against the oracle's segmentation of
    the same images, scored on the images where the oracle finds an object (``n_scored_oracle``).
    """
    s = sample(G, n, seed=seed)
    teacher = foreground_mask(s["mask"], orientation)
    pred = predict_masks(net, s["image"])

    def mean(pred_masks, target):
        scores = score_masks_per_image(pred_masks, target, threshold)["foreground"]
        return {metric: float(scores[metric].mean()) for metric in ("iou", "dice")}

    out = {
        "n_images": n,
        "orientation": orientation,
        "s_vs_generator": mean(pred, teacher),
        "image_statistics": image_statistics(s["image"]),
    }
    if oracle is not None:
        oracle_device = next(oracle.parameters()).device
        target = oracle_predict(oracle, s["image"].to(oracle_device)).cpu()
        seen = coverage(target, threshold) > 0
        out["n_scored_oracle"] = int(seen.sum())
        if out["n_scored_oracle"]:
            out["s_vs_oracle"] = mean(pred[seen], target[seen])
            out["generator_vs_oracle"] = mean(teacher[seen], target[seen])
    return out
