"""Mask quality scores and training-free baseline predictors.

Scores compare predicted foreground probabilities with binary ground-truth masks under the two
protocols found in the literature (see ``PROTOCOLS``); both are means over images. The
training-free predictors give the floor that a trained segmenter has to beat. Torch tensors
throughout, no dependencies beyond torch.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from comgan_lib.metrics.colour_em import colour_em

PROTOCOLS = {
    "max_flip": "per image, the better of the mask and its inverse (ReDO, released ComGAN)",
    "foreground": "predicted foreground scored against the ground truth as is (DRC)",
}


def _flat_pair(pred: Tensor, gt: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Check shapes and return boolean masks flattened to [N, pixels]."""
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    if pred.dim() not in (3, 4) or (pred.dim() == 4 and pred.shape[1] != 1):
        raise ValueError(f"masks must be [N,1,H,W] or [N,H,W], got {tuple(pred.shape)}")
    if pred.shape[0] == 0:
        raise ValueError("empty batch: no masks to score")
    pred_bin = pred.float() >= threshold  # >= as in the reference evaluation: 0.5 is foreground
    gt_bin = gt.float() > 0.5
    return pred_bin.reshape(pred.shape[0], -1), gt_bin.reshape(gt.shape[0], -1)


def iou_per_image(pred_bin: Tensor, gt_bin: Tensor) -> Tensor:
    """IoU |p∩g|/|p∪g| per image of boolean masks [N, ...]; 1.0 when both masks are empty."""
    p, g = pred_bin.reshape(pred_bin.shape[0], -1), gt_bin.reshape(gt_bin.shape[0], -1)
    inter = (p & g).sum(1).double()
    union = (p | g).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def dice_per_image(pred_bin: Tensor, gt_bin: Tensor) -> Tensor:
    """Dice 2|p∩g|/(|p|+|g|) per image of boolean masks [N, ...]; 1.0 when both are empty."""
    p, g = pred_bin.reshape(pred_bin.shape[0], -1), gt_bin.reshape(gt_bin.shape[0], -1)
    inter = (p & g).sum(1).double()
    total = (p.sum(1) + g.sum(1)).double()
    return torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total))


def score_masks_per_image(pred: Tensor, gt: Tensor, threshold: float = 0.5) -> dict:
    """Per-image scores: ``{protocol: {"iou": Tensor[N], "dice": Tensor[N]}}``.

    ``pred`` holds foreground probabilities (foreground = ``pred >= threshold``), ``gt`` binary
    masks (foreground = ``gt > 0.5``), both [N,1,H,W] or [N,H,W].
    """
    p, g = _flat_pair(pred, gt, threshold)
    fg = {"iou": iou_per_image(p, g), "dice": dice_per_image(p, g)}
    # Dice is monotone in IoU, so both maxima pick the same labelling of each image.
    flip = {
        "iou": torch.maximum(fg["iou"], iou_per_image(~p, g)),
        "dice": torch.maximum(fg["dice"], dice_per_image(~p, g)),
    }
    return {"max_flip": flip, "foreground": fg}


def score_masks(pred: Tensor, gt: Tensor, threshold: float = 0.5) -> dict:
    """Mean per-image IoU and Dice under both protocols, as plain floats.

    Returns ``{"max_flip": {"iou", "dice"}, "foreground": {"iou", "dice"}, "n_images": N}``.
    """
    per_image = score_masks_per_image(pred, gt, threshold)
    out: dict = {
        name: {k: float(v.mean()) for k, v in scores.items()} for name, scores in per_image.items()
    }
    out["n_images"] = int(pred.shape[0])
    return out


def coverage(masks: Tensor, threshold: float = 0.5) -> Tensor:
    """Fraction of foreground pixels (``masks >= threshold``) per image of [N,1,H,W] or [N,H,W]."""
    return (masks.float() >= threshold).reshape(masks.shape[0], -1).float().mean(1)


def otsu_threshold(values: Tensor, bins: int = 256) -> float:
    """Otsu threshold of a 1-D sample: the bin edge maximising the between-class variance.

    Values above the returned threshold form the upper class. A constant sample returns its
    value, so nothing lies above it.
    """
    v = values.reshape(-1).double()
    if v.numel() == 0:
        raise ValueError("otsu_threshold needs at least one value")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return hi
    hist = torch.histc(v, bins=bins, min=lo, max=hi)
    prob = hist / hist.sum()
    width = (hi - lo) / bins
    centres = lo + (torch.arange(bins, dtype=torch.float64, device=v.device) + 0.5) * width
    w0 = prob.cumsum(0)[:-1]  # weight of the lower class when splitting after bin k
    m0 = (prob * centres).cumsum(0)[:-1]
    mean = float((prob * centres).sum())
    denom = w0 * (1 - w0)
    between = torch.where(denom > 0, (mean * w0 - m0) ** 2 / denom.clamp(min=1e-300), 0.0)
    # Empty bins between two modes give a plateau of equal variance: split in its middle.
    best = torch.nonzero(between >= between.max() * (1 - 1e-9)).flatten()
    k = int(round((int(best[0]) + int(best[-1])) / 2))
    return lo + (k + 1) * width


def _check_images(images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be [N,C,H,W], got {tuple(images.shape)}")


def all_foreground(images: Tensor) -> Tensor:
    """Predict every pixel as foreground: ones [N,1,H,W]."""
    _check_images(images)
    n, _, h, w = images.shape
    return torch.ones(n, 1, h, w, dtype=images.dtype, device=images.device)


def centred_disc(images: Tensor, radius_fraction: float = 0.35) -> Tensor:
    """Predict a disc of radius ``radius_fraction * min(H, W)`` at the image centre."""
    _check_images(images)
    n, _, h, w = images.shape
    ys = torch.arange(h, dtype=torch.float64, device=images.device) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float64, device=images.device) - (w - 1) / 2
    radius = radius_fraction * min(h, w)
    disc = ys[:, None] ** 2 + xs[None, :] ** 2 <= radius**2
    return disc.to(images.dtype).expand(n, 1, h, w).clone()


def border_otsu(images: Tensor, border: int = 2, bins: int = 256) -> Tensor:
    """Foreground = pixels whose colour is far from the mean border colour (Otsu split per image).

    The border band is the pixels within ``border`` of the image edge. A constant image is all
    background.
    """
    _check_images(images)
    if border < 1:
        raise ValueError(f"border must be >= 1, got {border}")
    n, _, h, w = images.shape
    band = torch.ones(h, w, dtype=torch.bool, device=images.device)
    band[border : h - border, border : w - border] = False
    x = images.double()
    border_colour = x[:, :, band].mean(2)  # [N, C]
    dist = (x - border_colour[:, :, None, None]).pow(2).sum(1).sqrt()  # [N, H, W]
    masks = [d > otsu_threshold(d, bins) for d in dist]
    return torch.stack(masks)[:, None].to(images.dtype)


def centre_colour_em(images: Tensor, prior_inside: float = 0.7) -> Tensor:
    """Per-image colour EM (``comgan_lib.metrics.colour_em``) from a soft centred disc: pixels
    inside ``centred_disc`` start at ``prior_inside``, outside at ``1 - prior_inside``. A
    GrabCut-like predictor: what each image's own colours say, given only "the object is central".
    """
    disc = centred_disc(images)
    prior = disc * (2 * prior_inside - 1) + (1 - prior_inside)
    return colour_em(images, prior)


TRAINING_FREE_PREDICTORS: dict[str, Callable[[Tensor], Tensor]] = {
    "all_foreground": all_foreground,
    "centred_disc": centred_disc,
    "border_otsu": border_otsu,
    "centre_colour_em": centre_colour_em,
}


def score_training_free(images: Tensor, gt: Tensor, threshold: float = 0.5) -> dict:
    """Score each training-free predictor on ``images`` against ``gt``: name -> ``score_masks``."""
    return {
        name: score_masks(predict(images), gt.reshape(gt.shape[0], 1, *gt.shape[-2:]), threshold)
        for name, predict in TRAINING_FREE_PREDICTORS.items()
    }


# Trivial-solution diagnostics (§3.1): the two collapses a compositional GAN can fall into.
EMPTY_COVERAGE, FULL_COVERAGE = 0.02, 0.98
SAME_LAYERS_TOLERANCE = 0.05  # mean |F − B| under the mask, on the [-1, 1] scale


def trivial_solution_summary(
    mask: Tensor, fg: Tensor | None = None, bg: Tensor | None = None
) -> dict[str, float]:
    """Summarise a batch of generated masks (and layers) for the two trivial solutions.

    - ``frac_empty`` / ``frac_full``: masks covering < 2% / > 98% of the image (first kind);
    - ``frac_same_layers``: samples whose F and B differ by less than 0.05 on average under the
      mask, so the mask changes nothing (second kind); only when ``fg`` and ``bg`` are given;
    - ``binariness``: mean of |2m − 1| (1 for a hard 0/1 mask, 0 for m = 0.5 everywhere);
    - ``coverage_mean`` and the 10th / 50th / 90th coverage percentiles (soft coverage, mean m).
    """
    m = mask.detach().float().reshape(mask.shape[0], -1)
    cov = m.mean(1)
    out = {
        "frac_empty": float((cov < EMPTY_COVERAGE).float().mean()),
        "frac_full": float((cov > FULL_COVERAGE).float().mean()),
        "binariness": float((2 * m - 1).abs().mean()),
        "coverage_mean": float(cov.mean()),
    }
    for q in (10, 50, 90):
        out[f"coverage_p{q}"] = float(torch.quantile(cov, q / 100))
    if fg is not None and bg is not None:
        diff = (fg.detach().float() - bg.detach().float()).abs().mean(1).reshape(m.shape)
        under = (diff * m).sum(1) / m.sum(1).clamp(min=1e-6)
        out["frac_same_layers"] = float((under < SAME_LAYERS_TOLERANCE).float().mean())
    return out
