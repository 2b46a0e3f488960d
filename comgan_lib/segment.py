"""Stage 2 (Sec. 3.3): a segmenter S trained on the frozen generator's images and masks, and
segmenting a folder of your own images with it.

Usage (from a notebook)::

    record = orient_generator(G, n=512, seed=0)          # is M the foreground or the background?
    result = train_segmenter(params, run, "comgan")       # S + D_m, checkpoints, jsonl log
    scores = evaluate_segmenter(params, run)              # IoU / Dice, both protocols, both splits
    net, info = load_segmenter(run)
    probs = predict_masks(net, images)                    # foreground probabilities [N,1,H,W]

Command line (one PNG mask per image, at the image's own size)::

    python -m comgan_lib.segment --run outputs/<run> --images DIR --out DIR [--overlay]

**Orientation.** Nothing in stage 1 says which layer M selects: on the embedded dataset M often
ends up on the *background* layer. ``orient_generator`` decides once per generator, without labels:
the layer that covers more of the image border (a 2-pixel ring) is the background. The segmenter
is trained on the mask oriented to the foreground; the record travels in its checkpoint.

**One stage-2 step.** Real images ``x`` come from the training split (held in memory, as in stage
1); pairs ``(x̄, x̄_m)`` are sampled on the fly from the frozen EMA generator, ``x̄_m`` oriented to
the foreground. S outputs logits; its mask is their sigmoid.

- D_m (Eq. 9, the max side): generated masks ``x̄_m`` are real; S's masks on real images
  ``x_m = S(x)`` and on generated images ``x̂_m = S(x̄)`` are fake. Non-saturating BCE from
  logits, the real term once as in Eq. 9 (the released code counts it twice).
- S (Eq. 9, the min side, plus Eq. 10): ``λ·|x̄_m − S(x̄)|₁ − log D_m(S(x)) − log D_m(S(x̄))``
  with ``λ = segment.cons_weight`` (2, as the released code).

D_m is the image discriminator template on one channel; masks enter it as ``2m − 1`` (the images'
[-1, 1] scale). Checkpoints, resume, log and the NaN guard follow ``comgan_lib.train``. The step
is ``Stage2Step`` (built by ``build_stage2``, timed by ``comgan_lib.bench``); ``segment.precision``,
``segment.channels_last``, ``segment.compile`` and ``train.fused_adam`` / ``train.cudnn_benchmark``
say how it runs (``comgan_lib.speed``).

Checkpoint ``checkpoints/<name>.pt`` (``name`` defaults to ``segmenter``)::

    format, step, spec (SegmenterSpec as a dict), generator, generator_step, orientation (record),
    threshold (eval.threshold at training time), S, D_m, opt_S, opt_D, rng_torch, rng_batches,
    rng_latents
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from comgan_lib import speed
from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.losses import d_loss, g_loss
from comgan_lib.metrics.masks import (
    PROTOCOLS,
    TRAINING_FREE_PREDICTORS,
    coverage,
    score_masks_per_image,
)
from comgan_lib.nets.discriminators import ImageDiscriminator
from comgan_lib.nets.segmenter import UNet
from comgan_lib.rundir import RunDir, save_torch_atomic
from comgan_lib.runtime import pick_device
from comgan_lib.train import (
    ImageBank,
    TrainingDiverged,
    _truncate_log,
    load_generator,
    run_summary,
    to_device,
)

CHECKPOINT_FORMAT = 1
DEFAULT_NAME = "segmenter"
BORDER_PX = 2
ORIENTATIONS = ("mask", "inverse")
CONFIDENT_MARGIN = 0.1


# Orientation: which layer does M select?


def border_ring(height: int, width: int, border: int = BORDER_PX) -> torch.Tensor:
    """Boolean [H, W]: the pixels within ``border`` of the image edge."""
    if border < 1 or 2 * border >= min(height, width):
        raise ValueError(f"border must be in 1..{min(height, width) // 2 - 1}, got {border}")
    ring = torch.ones(height, width, dtype=torch.bool)
    ring[border : height - border, border : width - border] = False
    return ring


def _sample_latents(G, n: int, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
    """Every input of ``G.forward`` for ``n`` samples (z, and the codes f, b of coded models)."""
    if hasattr(G, "sample_latents"):
        return G.sample_latents(n, generator=generator, device=device)
    return {"z": G.sample_z(n, generator=generator, device=device)}


@torch.no_grad()
def orient_generator(
    G, n: int = 512, seed: int = 0, border: int = BORDER_PX, batch_size: int = 128
) -> dict:
    """Decide once, without labels, whether ``G``'s mask M is the foreground or the background.

    Rule: the layer that covers more of the image border (a ``border``-pixel ring, averaged over
    ``n`` samples) is the background. M covers the ring by ``border_mask_mean`` and the other layer
    by ``1 − border_mask_mean``; if M covers more, M is the background and the foreground mask is
    ``1 − M`` ("inverse"), otherwise M is the foreground ("mask"; a tie counts as "mask").

    Returns ``{"orientation", "border_mask_mean", "border_inverse_mean", "centre_mask_mean",
    "mask_mean", "frac_samples_agree", "margin", "n_samples", "seed", "border_px", "source"}``:
    ``frac_samples_agree`` is the share of samples whose own ring vote agrees with the decision,
    ``margin`` is ``|border_mask_mean − 0.5|`` (0: undecided, 0.5: unanimous and hard) and
    ``confident`` says ``margin >= 0.1`` (below it, check the masks or compare with an oracle).
    """
    first = next(G.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    # All latents at once, so the decision does not depend on the batch size.
    latents = _sample_latents(G, n, torch.Generator().manual_seed(seed), "cpu")
    ring_sums, centre_sums, totals = [], [], []
    ring = centre = None
    for start in range(0, n, batch_size):
        chunk = {k: v[start : start + batch_size].to(device) for k, v in latents.items()}
        m = G(**chunk)["mask"].float().cpu()
        if ring is None:
            h, w = m.shape[-2:]
            ring = border_ring(h, w, border)
            centre = torch.zeros(h, w, dtype=torch.bool)
            centre[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
        m = m.reshape(m.shape[0], *m.shape[-2:])
        ring_sums.append(m[:, ring].mean(1))
        centre_sums.append(m[:, centre].mean(1))
        totals.append(m.flatten(1).mean(1))
    per_sample = torch.cat(ring_sums)
    border_mean = float(per_sample.mean())
    inverse = border_mean > 0.5
    votes = per_sample > 0.5 if inverse else per_sample <= 0.5
    return {
        "orientation": "inverse" if inverse else "mask",
        "border_mask_mean": border_mean,
        "border_inverse_mean": 1.0 - border_mean,
        "centre_mask_mean": float(torch.cat(centre_sums).mean()),
        "mask_mean": float(torch.cat(totals).mean()),
        "frac_samples_agree": float(votes.float().mean()),
        "margin": abs(border_mean - 0.5),
        "confident": abs(border_mean - 0.5) >= CONFIDENT_MARGIN,
        "n_samples": n,
        "seed": seed,
        "border_px": border,
        "source": "border rule",
    }


def given_orientation(orientation: str) -> dict:
    """An orientation record for an orientation chosen by hand (not measured)."""
    if orientation not in ORIENTATIONS:
        raise UserError(
            f"orientation must be one of {', '.join(ORIENTATIONS)}; got {orientation!r}"
        )
    return {"orientation": orientation, "source": "given"}


def foreground_mask(mask: torch.Tensor, orientation: str) -> torch.Tensor:
    """The generator's mask oriented to the foreground: M itself, or ``1 − M``."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return 1 - mask if orientation == "inverse" else mask


def compare_with_oracle(G, oracle, record: dict | None = None, n: int = 1000, seed: int = 0):
    """Check the unsupervised border rule against the oracle's orientation (evaluation only).

    Returns ``{"border_rule", "oracle", "agree", "border_record", "oracle_fidelity"}`` where
    ``oracle_fidelity`` is ``comgan_lib.oracle.mask_fidelity``'s dict.
    """
    from comgan_lib.oracle import mask_fidelity

    record = record or orient_generator(G, n=n, seed=seed)
    fidelity = mask_fidelity(G, oracle, n=n, seed=seed)
    return {
        "border_rule": record["orientation"],
        "oracle": fidelity["orientation"],
        "agree": record["orientation"] == fidelity["orientation"],
        "border_record": record,
        "oracle_fidelity": fidelity,
    }


# Stage-2 training.


def auto_depth(resolution: int) -> int:
    """U-Net stages for a resolution: 3 at 16 px, 4 at 32 px, 5 from 64 px (the reference's 5)."""
    return max(2, min(5, int(math.log2(resolution)) - 1))


@dataclass
class SegmenterSpec:
    """What identifies a stage-2 run; a checkpoint resumes only under the same spec."""

    name: str
    generator: str
    generator_step: int | None
    orientation: str
    resolution: int
    width: int
    depth: int
    disc_width: int
    batch_size: int
    lr: float
    cons_weight: float
    precision: str

    def differences(self, other: dict) -> list[str]:
        mine = self.__dict__
        return [f"{k}: {other.get(k)!r} -> {v!r}" for k, v in mine.items() if other.get(k) != v]


def build_segmenter(spec: dict) -> UNet:
    return UNet(3, spec["width"], spec["depth"])


def build_mask_discriminator(resolution: int, width: int) -> ImageDiscriminator:
    """D_m: the image discriminator template on one-channel masks (given as ``2m − 1``)."""
    return ImageDiscriminator(resolution, width, in_channels=1)


def _autocast(device: torch.device, precision: str):
    return speed.autocast(device, precision)


@dataclass
class Stage2Result:
    """What one stage-2 step computed (S's gradients in place, not yet applied)."""

    loss_d: torch.Tensor
    loss_s: torch.Tensor
    loss_cons: torch.Tensor
    loss_adv: torch.Tensor
    d_mask: torch.Tensor
    d_real: torch.Tensor
    d_gen: torch.Tensor
    pred_real: torch.Tensor
    pred_gen: torch.Tensor
    m_gen: torch.Tensor


@dataclass
class Stage2Step:
    """One stage-2 step (Eq. 9 and 10), shared by ``train_segmenter`` and the benchmark.

    ``grads(real)`` samples pairs from the frozen generator ``G`` (latents from ``latent_rng``),
    runs the D_m step (forward, backward, D_m's update) and S's forward and backward;
    ``update()`` applies S's update. ``options`` (``comgan_lib.speed``) say how, not what."""

    G: torch.nn.Module
    S: torch.nn.Module
    D: torch.nn.Module
    opt_s: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    orientation: str
    cons_weight: float
    device: torch.device
    latent_rng: torch.Generator
    options: speed.SpeedOptions = field(default_factory=speed.SpeedOptions)

    def __post_init__(self):
        fmt = speed.memory_format(self.options)
        for m in (self.G, self.S, self.D):
            m.to(memory_format=fmt)
        self.g_fwd = speed.maybe_compile(self.G, self.options, self.device, "G (stage 2)")
        self.s_fwd = speed.maybe_compile(self.S, self.options, self.device, "S")
        self.d_fwd = speed.maybe_compile(self.D, self.options, self.device, "D_m")

    def grads(self, real: torch.Tensor) -> Stage2Result:
        B, dev, o = real.shape[0], self.device, self.options
        speed.apply_backend_flags(dev, o)
        with torch.no_grad(), speed.autocast(dev, o.precision):
            gen = self.g_fwd(**_sample_latents(self.G, B, self.latent_rng, dev))
        x_gen = gen["image"].float()
        m_gen = foreground_mask(gen["mask"].float(), self.orientation)

        with speed.autocast(dev, o.precision):
            logits = self.s_fwd(speed.to_format(torch.cat([real, x_gen]), o)).float()
        pred_real, pred_gen = torch.sigmoid(logits).split(B)

        # D_m step (Eq. 9): generated masks → 1, S's masks on real and generated images → 0.
        with speed.autocast(dev, o.precision):
            d_mask = self.d_fwd(m_gen * 2 - 1).float()
            d_real = self.d_fwd(pred_real.detach() * 2 - 1).float()
            d_gen = self.d_fwd(pred_gen.detach() * 2 - 1).float()
        loss_d = d_loss(d_mask, d_real, d_gen)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # S step: both predictions → 1 under D_m, plus λ·L1 to the generated mask (Eq. 10).
        self.D.requires_grad_(False)
        try:
            with speed.autocast(dev, o.precision):
                a_real = self.d_fwd(pred_real * 2 - 1).float()
                a_gen = self.d_fwd(pred_gen * 2 - 1).float()
        finally:
            self.D.requires_grad_(True)
        loss_adv = g_loss(a_real) + g_loss(a_gen)
        loss_cons = (pred_gen - m_gen).abs().mean()
        loss_s = self.cons_weight * loss_cons + loss_adv
        self.opt_s.zero_grad(set_to_none=True)
        loss_s.backward()
        return Stage2Result(
            loss_d, loss_s, loss_cons, loss_adv, d_mask, d_real, d_gen, pred_real, pred_gen, m_gen
        )

    def update(self) -> None:
        self.opt_s.step()


def build_stage2(
    G, spec: SegmenterSpec, params: Params, device, seed: int, options=None
) -> Stage2Step:
    """S, D_m and their optimisers (initialised from ``seed``) around the frozen ``G``."""
    options = options or speed.SpeedOptions.for_stage2(params)
    speed.apply_backend_flags(device, options)
    torch.manual_seed(seed)
    S = build_segmenter(spec.__dict__).to(device).train()
    D = build_mask_discriminator(spec.resolution, spec.disc_width).to(device).train()
    betas = (params.train.beta1, params.train.beta2)
    return Stage2Step(
        G=G,
        S=S,
        D=D,
        opt_s=speed.adam(S.parameters(), spec.lr, betas, options, device),
        opt_d=speed.adam(D.parameters(), spec.lr, betas, options, device),
        orientation=spec.orientation,
        cons_weight=spec.cons_weight,
        device=device,
        latent_rng=torch.Generator().manual_seed(seed + 1),
        options=options,
    )


def _checkpoint_path(run: RunDir | str | Path, name: str) -> Path:
    """The checkpoint path, without creating any folder when ``run`` is a plain path."""
    if isinstance(run, RunDir):
        return run.path("checkpoints", f"{name}.pt")
    return Path(run) / "checkpoints" / f"{name}.pt"


def _generator_step(run: RunDir, name: str) -> int | None:
    path = run.path("checkpoints", f"{name}.pt")
    if not path.exists():
        raise UserError(f"no checkpoint for generator '{name}' at {path}; train stage 1 first")
    return torch.load(path, map_location="cpu", weights_only=False).get("step")


def train_segmenter(
    params: Params,
    run: RunDir,
    generator_name: str,
    name: str = DEFAULT_NAME,
    steps: int | None = None,
    orientation: str | dict | None = None,
    bank: ImageBank | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume, or just reload) the stage-2 segmenter on generator ``generator_name``.

    ``orientation`` (``"mask"`` / ``"inverse"``, or a record from ``orient_generator``) overrides
    the border rule; by default it is
    measured with ``orient_generator`` on ``segment.orientation_samples`` samples (seed
    ``run.seed``) when the run starts, and read back from the checkpoint when it resumes.

    Returns ``{"name", "generator", "orientation", "steps", "sec_per_step", "checkpoint", "log",
    "last"}`` (``orientation`` is the full record, ``last`` the last log line).
    """
    s = params.segment
    steps = s.steps if steps is None else steps
    resolution = params.data.resolution
    depth = s.depth or auto_depth(resolution)
    if resolution % 2 ** (depth - 1):
        raise UserError(
            f"segment.depth {depth} needs a resolution divisible by {2 ** (depth - 1)}; "
            f"data.resolution is {resolution}"
        )
    device = pick_device(params.run.device)
    ckpt_path = run.path("checkpoints", f"{name}.pt")
    log_path = run.path("logs", f"{name}.jsonl")

    state = None
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
    G = load_generator(run, generator_name, device=device).requires_grad_(False)
    if not getattr(G, "has_mask", True):
        raise UserError(f"generator '{generator_name}' has no mask layer; stage 2 needs one")
    if G.resolution != resolution:
        raise UserError(
            f"generator '{generator_name}' is {G.resolution}px, data.resolution is {resolution}"
        )
    if isinstance(orientation, dict):  # a record measured beforehand (orient_generator)
        record = given_orientation(orientation.get("orientation")) | orientation
    elif orientation is not None:
        record = given_orientation(orientation)
    elif state is not None and state.get("generator") == generator_name:
        record = state["orientation"]
    else:
        record = orient_generator(G, n=s.orientation_samples, seed=params.run.seed)

    spec = SegmenterSpec(
        name=name,
        generator=generator_name,
        generator_step=_generator_step(run, generator_name),
        orientation=record["orientation"],
        resolution=resolution,
        width=s.width,
        depth=depth,
        disc_width=s.disc_width,
        batch_size=s.batch_size,
        lr=s.lr,
        cons_weight=float(s.cons_weight),
        precision=s.precision,
    )
    seed = params.run.seed * 1_000_003 + zlib.crc32(name.encode())
    step_fn = build_stage2(G, spec, params, device, seed)
    S, D, opt_s, opt_d = step_fn.S, step_fn.D, step_fn.opt_s, step_fn.opt_d
    batches = torch.Generator().manual_seed(seed)
    latent_rng = step_fn.latent_rng

    start = 0
    if state is not None:
        diff = spec.differences(state["spec"])
        if diff:
            raise UserError(
                f"{ckpt_path} was trained with other settings ({'; '.join(diff)}); "
                "delete it or choose another segmenter name"
            )
        S.load_state_dict(state["S"])
        D.load_state_dict(state["D_m"])
        opt_s.load_state_dict(state["opt_S"])
        opt_d.load_state_dict(state["opt_D"])
        torch.set_rng_state(state["rng_torch"].cpu())
        batches.set_state(state["rng_batches"].cpu())
        latent_rng.set_state(state["rng_latents"].cpu())
        start = state["step"]
        _truncate_log(log_path, start)
    elif log_path.exists():
        log_path.unlink()  # a log without a checkpoint belongs to a run that never saved
    del state

    def save(step: int) -> None:
        save_torch_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "spec": spec.__dict__,
                "generator": generator_name,
                "generator_step": spec.generator_step,
                "orientation": record,
                "threshold": params.eval.threshold,
                "S": S.state_dict(),
                "D_m": D.state_dict(),
                "opt_S": opt_s.state_dict(),
                "opt_D": opt_d.state_dict(),
                "rng_torch": torch.get_rng_state(),
                "rng_batches": batches.get_state(),
                "rng_latents": latent_rng.get_state(),
            },
            ckpt_path,
        )

    if bank is None and start < steps:
        bank = ImageBank.from_params(params)
    if bank is not None and bank.resolution != resolution:
        raise ValueError(f"image bank is {bank.resolution}px, the run is {resolution}px")

    B = s.batch_size
    bar = tqdm(total=steps, initial=start, desc=name, disable=not progress, leave=False)
    window_start, window_steps, t_begin = time.perf_counter(), 0, time.perf_counter()
    step = start
    with open(log_path, "a") as log:
        while step < steps:
            step += 1
            want_log = step % s.log_every == 0 or step == steps
            real = to_device(bank.sample(B, batches), device)
            r = step_fn.grads(real)
            loss_d, loss_s, loss_cons, loss_adv = r.loss_d, r.loss_s, r.loss_cons, r.loss_adv
            d_mask, d_real, d_gen, m_gen = r.d_mask, r.d_real, r.d_gen, r.m_gen
            pred_real, pred_gen = r.pred_real, r.pred_gen

            if not (torch.isfinite(loss_d) and torch.isfinite(loss_s)):
                kept = f"step {start}" if ckpt_path.exists() else "none yet"
                raise TrainingDiverged(
                    f"{name}: non-finite loss at step {step} (loss_D_m {loss_d.item():.4g}, "
                    f"loss_S {loss_s.item():.4g}); last good checkpoint: {kept} ({ckpt_path}). "
                    "Try a lower segment.lr or precision fp32."
                )
            step_fn.update()
            window_steps += 1
            bar.update(1)

            if want_log:
                now = time.perf_counter()
                record_line = {
                    "step": step,
                    "loss_d": loss_d.item(),
                    "loss_s": loss_s.item(),
                    "loss_cons": loss_cons.item(),
                    "loss_adv": loss_adv.item(),
                    "d_gen_mask": torch.sigmoid(d_mask).mean().item(),
                    "d_pred_real": torch.sigmoid(d_real).mean().item(),
                    "d_pred_gen": torch.sigmoid(d_gen).mean().item(),
                    "coverage_real": float(coverage(pred_real.detach()).mean()),
                    "coverage_gen": float(coverage(pred_gen.detach()).mean()),
                    "coverage_target": float(coverage(m_gen).mean()),
                    "binariness_real": float((2 * pred_real.detach() - 1).abs().mean()),
                    "sec_per_step": (now - window_start) / window_steps,
                    "wall_s": now - t_begin,
                }
                window_start, window_steps = now, 0
                log.write(json.dumps(record_line) + "\n")
                log.flush()
                bar.set_postfix(
                    d=f"{record_line['loss_d']:.2f}", cons=f"{record_line['loss_cons']:.3f}"
                )
            if step % s.checkpoint_every == 0 or step == steps:
                save(step)
                start = step
    bar.close()
    if not ckpt_path.exists():
        save(step)
    summary = run_summary(run, name, step, ckpt_path, log_path)
    return summary | {"generator": generator_name, "orientation": record}


# Loading and predicting.


def load_segmenter(
    run: RunDir | str | Path, name: str = DEFAULT_NAME, device: str | torch.device = "cpu"
) -> tuple[UNet, dict]:
    """The trained S in eval mode and ``{"step", "spec", "generator", "generator_step",
    "orientation", "threshold", "path"}``. ``run`` is a RunDir or a run folder path."""
    path = _checkpoint_path(run, name)
    if not path.exists():
        raise UserError(f"no segmenter checkpoint at {path}; train stage 2 first")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        net = build_segmenter(state["spec"])
        net.load_state_dict(state["S"])
    except (KeyError, RuntimeError, EOFError, OSError) as e:
        raise UserError(f"{path} is not a readable segmenter checkpoint ({e})") from e
    info = {
        "step": state["step"],
        "spec": state["spec"],
        "generator": state["generator"],
        "generator_step": state.get("generator_step"),
        "orientation": state["orientation"],
        "threshold": state.get("threshold", 0.5),
        "path": str(path),
    }
    return net.to(device).eval(), info


@torch.no_grad()
def predict_masks(net: UNet, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Foreground probabilities [N,1,H,W] (on the CPU) for images [N,3,H,W] in [-1, 1]."""
    net.eval()
    device = next(net.parameters()).device
    parts = [
        torch.sigmoid(net(images[i : i + batch_size].to(device).float())).cpu()
        for i in range(0, len(images), batch_size)
    ]
    if not parts:
        return torch.zeros(0, 1, *images.shape[-2:])
    return torch.cat(parts)


# Evaluation on ground-truth masks.


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
    ours, free = [], {k: [] for k in TRAINING_FREE_PREDICTORS}
    pred_cov, gt_cov = [], []
    for batch in tqdm(loader, desc=f"score {split}", disable=not progress, leave=False):
        if "mask" not in batch:
            return None
        images, gt = batch["image"], batch["mask"]
        pred = predict_masks(net, images, batch_size=params.eval.batch_size)
        ours.append(score_masks_per_image(pred, gt, threshold))
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
    images each. Per-image means, foreground = ``S(x) >= eval.threshold``. The three training-free
    predictors are scored on the same images. Returns::

        {"train": {"max_flip": {"iou", "dice"}, "foreground": {"iou", "dice"}, "n_images",
                   "split", "pred_coverage_mean", "gt_coverage_mean"},
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


# Segmenting a folder of your own images.


def _list_images(folder: Path, recursive: bool) -> list[Path]:
    from comgan_lib.data.folder import IMAGE_EXTENSIONS

    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in found
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _output_names(files: list[Path], folder: Path) -> dict[Path, Path]:
    """Mask path (relative) per image: same folder and stem, ``.png``; a stem shared by two
    files in one folder (``a.jpg``, ``a.png``) keeps the extension (``a_jpg.png``)."""
    rel = {f: f.relative_to(folder) for f in files}
    stems: dict[Path, int] = {}
    for r in rel.values():
        stems[r.with_suffix("")] = stems.get(r.with_suffix(""), 0) + 1
    out = {}
    for f, r in rel.items():
        base = r.with_suffix("")
        if stems[base] > 1:
            base = base.with_name(f"{base.name}_{r.suffix.lstrip('.').lower()}")
        out[f] = base.with_suffix(".png")
    return out


def _to_model_input(image: Image.Image, resolution: int) -> torch.Tensor:
    """The whole image stretched to R×R, as [3,R,R] in [-1, 1]."""
    small = image.resize((resolution, resolution), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(small, dtype=np.float32).copy())
    return (arr.permute(2, 0, 1) / 127.5 - 1).clamp(-1, 1)


def _mask_at_size(prob: torch.Tensor, size: tuple[int, int], threshold: float) -> np.ndarray:
    """Probabilities [1,R,R] resized (bilinear) to ``size`` = (width, height), thresholded."""
    width, height = size
    big = F.interpolate(prob[None].float(), size=(height, width), mode="bilinear")
    return (big[0, 0] >= threshold).numpy()


def overlay_image(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """A preview: background dimmed, foreground tinted red."""
    arr = np.asarray(image, dtype=np.float32)
    out = arr * 0.35
    tint = np.array([255.0, 40.0, 40.0], dtype=np.float32)
    out[mask] = 0.6 * arr[mask] + 0.4 * tint
    return Image.fromarray(out.clip(0, 255).round().astype(np.uint8))


def _run_threshold(run_root: Path, info: dict) -> float:
    """``eval.threshold`` of the run's params.yaml when present, else the checkpoint's."""
    import yaml

    path = run_root / "params.yaml"
    try:
        value = yaml.safe_load(path.read_text())["eval"]["threshold"]
        return float(value)
    except Exception:
        return float(info.get("threshold", 0.5))


def segment_folder(
    run: str | Path,
    images: str | Path,
    out: str | Path,
    overlay: bool = False,
    recursive: bool = False,
    threshold: float | None = None,
    name: str = DEFAULT_NAME,
    device: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
    log=None,
) -> dict:
    """Write one PNG mask (0 / 255, the image's own size) per image of ``images`` into ``out``.

    Each image is stretched to the model's resolution, segmented, and the probabilities resized
    back and thresholded (``threshold``, else the run's ``eval.threshold``). Subfolders are kept
    with ``recursive``. Unreadable files are reported on ``log`` (default stderr) and skipped.
    Returns ``{"segmented": [names], "skipped": [(name, reason)], "threshold", "out"}``.
    Raises UserError for a missing run, checkpoint or images folder.
    """
    from comgan_lib.data.folder import IMAGE_EXTENSIONS, load_image_rgb

    log = log or sys.stderr
    run_root, images, out = Path(run), Path(images), Path(out)
    if not run_root.is_dir():
        raise UserError(f"run folder not found: {run_root}")
    if not images.is_dir():
        raise UserError(f"images folder not found: {images}")
    if out.resolve() == images.resolve():
        raise UserError(f"--out must differ from --images ({out}): masks would overwrite images")
    net, info = load_segmenter(run_root, name, pick_device(device))
    resolution = info["spec"]["resolution"]
    threshold = _run_threshold(run_root, info) if threshold is None else threshold
    files = _list_images(images, recursive)
    if not files:
        exts = " ".join(IMAGE_EXTENSIONS)
        where = f"{images} or its subfolders" if recursive else str(images)
        raise UserError(f"no image files ({exts}) in {where}")
    targets = _output_names(files, images)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e}") from e

    segmented, skipped = [], []
    bar = tqdm(total=len(files), desc="segment", unit="img", disable=not progress, file=log)

    def flush(pending):
        if not pending:
            return
        probs = predict_masks(net, torch.stack([t for _, _, t in pending]), batch_size)
        for (path, image, _), prob in zip(pending, probs, strict=True):
            mask = _mask_at_size(prob, image.size, threshold)
            target = out / targets[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(target)
            if overlay:
                preview = target.with_name(f"{target.stem}_overlay.png")
                overlay_image(image, mask).save(preview)
            segmented.append(str(path.relative_to(images)))
        bar.update(len(pending))

    pending = []
    for path in files:
        try:
            image = load_image_rgb(path)
        except UserError as e:
            reason = str(e.__cause__ or e)
            name_ = str(path.relative_to(images))
            skipped.append((name_, reason))
            bar.update(1)
            tqdm.write(f"skipped {name_}: {reason}", file=log)
            continue
        pending.append((path, image, _to_model_input(image, resolution)))
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    flush(pending)
    bar.close()
    return {"segmented": segmented, "skipped": skipped, "threshold": threshold, "out": str(out)}


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(
        prog="python -m comgan_lib.segment",
        description="Segment your own images with a run's trained stage-2 segmenter: one PNG "
        "mask (white = foreground) per image, at the image's own size.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder, e.g. outputs/cub")
    parser.add_argument("--images", required=True, type=Path, help="folder of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the masks")
    parser.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    parser.add_argument("--recursive", action="store_true", help="also read subfolders")
    parser.add_argument(
        "--threshold", type=float, default=None, help="foreground threshold (default: the run's)"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="segmenter name (checkpoint stem)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        result = segment_folder(
            args.run,
            args.images,
            args.out,
            overlay=args.overlay,
            recursive=args.recursive,
            threshold=args.threshold,
            name=args.name,
            device=args.device,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the masks written so far are kept", file=sys.stderr)
        return 130
    n, skipped = len(result["segmented"]), result["skipped"]
    names = ", ".join(name for name, _ in skipped)
    print(f"{n} segmented, {len(skipped)} skipped" + (f": {names}" if skipped else ""))
    if n:
        print(f"masks written to {result['out']} (threshold {result['threshold']:g})")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
