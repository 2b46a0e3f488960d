"""The oracle segmenter: an evaluation instrument for stage-1 mask fidelity, never used in training.

Not part of the paper's method: it measures how well the mask M of the composite (Eq. 2 for
ComGAN, Eq. 6 for DS-ComGAN; Sec. 3.1-3.2) covers the object the generator drew, and checks the
unsupervised orientation rule that stage 2 (Sec. 3.3) relies on (``compare_with_oracle``).

On the embedded dataset we have exact ground-truth masks, so a U-Net trained *with* them segments
generated images well. Scoring each generated mask against the oracle's segmentation of the same
generated image tells whether the generator's mask really covers the object it drew — coverage
statistics alone can hide outline-only masks or masks on the wrong layer.

The orientation (is M the foreground layer or the background layer?) is decided once per model by
which reading agrees better with the oracle over all samples; it is never flipped per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from comgan_lib.config import Params
from comgan_lib.data import build_dataset, stack_items
from comgan_lib.metrics.masks import coverage, score_masks_per_image
from comgan_lib.nets.segmenter import UNet
from comgan_lib.orientation import foreground_mask, orient_generator
from comgan_lib.rundir import RunDir, save_torch_atomic
from comgan_lib.train import sample


def train_oracle(
    params: Params,
    run: RunDir,
    steps: int = 1500,
    width: int = 16,
    depth: int = 4,
    batch_size: int = 32,
    progress: bool = True,
) -> tuple[UNet, dict]:
    """Train (or reload) the oracle U-Net on the train split's ground-truth masks.

    Returns the network in eval mode and its held-out scores (both protocols).
    """
    path = run.path("checkpoints", "oracle.pt")
    torch.manual_seed(params.run.seed + 17)
    net = UNet(3, width, depth)
    train = stack_items(build_dataset(params, "train"))
    test = stack_items(build_dataset(params, "test"))
    if "mask" not in train:
        raise ValueError("the oracle needs a dataset with ground-truth masks")
    spec = {"width": width, "depth": depth, "steps": steps, "batch_size": batch_size}
    if path.exists() and (state := torch.load(path, weights_only=False))["spec"] == spec:
        net.load_state_dict(state["net"])
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(params.run.seed + 17)
        net.train()
        for _ in tqdm(range(steps), desc="oracle", disable=not progress, leave=False):
            idx = torch.randint(len(train["image"]), (batch_size,), generator=gen)
            x, m = train["image"][idx], train["mask"][idx]
            flip = torch.rand(batch_size, generator=gen) < 0.5
            x[flip], m[flip] = x[flip].flip(-1), m[flip].flip(-1)
            loss = F.binary_cross_entropy_with_logits(net(x), m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        save_torch_atomic({"spec": spec, "net": net.state_dict()}, path)
    net.eval()
    pred = predict(net, test["image"])
    scores = score_masks_per_image(pred, test["mask"])
    held_out = {p: {k: float(v.mean()) for k, v in s.items()} for p, s in scores.items()}
    return net, held_out


@torch.no_grad()
def predict(net: UNet, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Foreground probabilities [N,1,H,W] for images in [-1, 1]."""
    net.eval()
    return torch.cat(
        [torch.sigmoid(net(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    )


def mask_fidelity(G, oracle: UNet, n: int = 1000, seed: int = 0) -> dict:
    """Score ``n`` generated masks against the oracle's segmentation of the generated images.

    Returns the chosen orientation (``"mask"``: M is the foreground; ``"inverse"``: M is the
    background), the mean foreground-only IoU and Dice in that orientation and in the other, the
    share of samples whose (oriented) coverage lies in [5%, 95%], the mean oriented coverage, and
    where the disagreement lies: ``spill`` (the share of the oriented mask the oracle calls
    background: an oversized mask) and ``miss`` (the share of the oracle's object outside the mask:
    an undersized one), each averaged over the samples that have such pixels. ``layer_gap`` is the
    mean |F − B| (in [0, 1] intensity units, pooled over pixels) in each region: the object under
    the mask, the spill, the missed object and the background both call background. By Lemma 1
    this is the size of the composite's derivative with respect to the mask: a gap near zero in the
    spill would mean F copies B there (the second trivial solution, locally), a gap as large as on
    the object means F draws something of its own there.

    Samples whose image the oracle finds no object in are counted (``n_no_object``) and left out
    of every score (``n_scored`` remain); with none left the scores are NaN.
    """
    s = sample(G, n, seed=seed)
    target = predict(oracle, s["image"])
    # Where the oracle sees no object at all, "agreement" is meaningless: an empty mask against an
    # empty segmentation scores IoU 1, so an untrained generator would read as perfect. Such
    # samples are counted (``n_no_object``) and left out of every score below.
    scored = coverage(target) > 0
    n_scored = int(scored.sum())
    base = {"n_samples": n, "n_no_object": n - n_scored, "n_scored": n_scored}
    if n_scored == 0:
        nan = float("nan")
        return base | {
            "orientation": None,
            **dict.fromkeys(("iou", "dice", "iou_other_orientation", "frac_coverage_5_95"), nan),
            **dict.fromkeys(("coverage_mean", "oracle_coverage_mean", "spill", "miss"), nan),
            "layer_gap": {},
        }
    s = {k: v[scored] for k, v in s.items()}
    target = target[scored]
    direct = score_masks_per_image(s["mask"], target)["foreground"]
    inverse = score_masks_per_image(1 - s["mask"], target)["foreground"]
    use_inverse = inverse["iou"].mean() > direct["iou"].mean()
    chosen, other = (inverse, direct) if use_inverse else (direct, inverse)
    fg_mask = 1 - s["mask"] if use_inverse else s["mask"]
    cov = coverage(fg_mask)
    spill, miss = _spill_and_miss(fg_mask, target)
    gap = _layer_gap_by_region(fg_mask, target, s["fg"], s["bg"])
    return base | {
        "orientation": "inverse" if use_inverse else "mask",
        "iou": float(chosen["iou"].mean()),
        "dice": float(chosen["dice"].mean()),
        "iou_other_orientation": float(other["iou"].mean()),
        "frac_coverage_5_95": float(((cov >= 0.05) & (cov <= 0.95)).float().mean()),
        "coverage_mean": float(cov.mean()),
        "oracle_coverage_mean": float(coverage(target).mean()),
        "spill": spill,
        "miss": miss,
        "layer_gap": gap,
    }


def compare_with_oracle(G, oracle, record: dict | None = None, n: int = 1000, seed: int = 0):
    """Check the unsupervised border rule against the oracle's orientation (evaluation only).

    ``record`` is ``comgan_lib.orientation.orient_generator``'s (measured here when None).
    Returns ``{"border_rule", "oracle", "agree", "border_record", "oracle_fidelity"}`` where
    ``oracle_fidelity`` is ``mask_fidelity``'s dict.
    """
    record = record or orient_generator(G, n=n, seed=seed)
    fidelity = mask_fidelity(G, oracle, n=n, seed=seed)
    return {
        "border_rule": record["orientation"],
        "oracle": fidelity["orientation"],
        "agree": record["orientation"] == fidelity["orientation"],
        "border_record": record,
        "oracle_fidelity": fidelity,
    }


def disagreement_rows(
    G, oracle: UNet, orientation: str, k: int = 16, seed: int = 0, title: str = ""
):
    """A figure of ``k`` samples, one row each: the image, the oracle's segmentation, the mask in
    ``orientation`` ("mask" or "inverse"), the layer that mask selects and the other layer."""
    from comgan_lib import viz

    s = sample(G, k, seed=seed)
    mask = foreground_mask(s["mask"], orientation)  # also rejects an unknown orientation
    inverse = orientation == "inverse"
    mask_layer, other_layer = (s["bg"], s["fg"]) if inverse else (s["fg"], s["bg"])
    return viz.grid_rows(
        [s["image"], predict(oracle, s["image"]), mask, mask_layer, other_layer],
        ["image", "oracle", "mask (oriented)", "mask's layer", "other layer"],
        title=title or "Where the masks and the oracle disagree",
    )


def _spill_and_miss(mask: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean share of mask pixels outside ``target`` and of target pixels outside the mask (binary
    at 0.5; samples with an empty mask, or an empty target, are left out of the respective mean)."""
    m = (mask >= 0.5).flatten(1).float()
    t = (target >= 0.5).flatten(1).float()
    m_area, t_area = m.sum(1), t.sum(1)
    spill = (m * (1 - t)).sum(1)[m_area > 0] / m_area[m_area > 0]
    miss = (t * (1 - m)).sum(1)[t_area > 0] / t_area[t_area > 0]
    return (
        float(spill.mean()) if len(spill) else float("nan"),
        float(miss.mean()) if len(miss) else float("nan"),
    )


def _layer_gap_by_region(mask, target, fg, bg) -> dict[str, float]:
    """Mean |F − B| / 2 (channels averaged) over the pixels of each region of the binary (0.5)
    mask against the binary target: object, spill, miss, background; NaN for an empty region."""
    m, t = (mask >= 0.5).float(), (target >= 0.5).float()
    gap = (fg.float() - bg.float()).abs().mean(1, keepdim=True) / 2
    regions = {
        "object": m * t,
        "spill": m * (1 - t),
        "miss": (1 - m) * t,
        "background": (1 - m) * (1 - t),
    }
    return {
        name: float((gap * r).sum() / r.sum()) if r.sum() > 0 else float("nan")
        for name, r in regions.items()
    }
