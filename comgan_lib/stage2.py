"""Stage 2 (Sec. 3.3, Eq. 9-10; the S + D_m terms of Eq. 12): the segmenter S trained on the
frozen generator's image-mask pairs, with a mask discriminator D_m; loading and applying it.

Usage (from a notebook)::

    result = train_segmenter(params, run, "comgan")       # S + D_m, checkpoints, jsonl log
    net, info = load_segmenter(run)
    probs = predict_masks(net, images)                    # foreground probabilities [N,1,H,W]

Scoring on ground-truth masks is ``comgan_lib.segment_eval``; segmenting a folder of your own
images is ``comgan_lib.segment`` (``python -m comgan_lib.segment``).

**Orientation.** The generator's mask is oriented to the foreground before S learns from it
(``comgan_lib.orientation``: by default the border rule, measured when a run starts); the record
travels in the checkpoint.

**One stage-2 step.** Real images ``x`` come from the training split (held in memory, as in stage
1); pairs ``(x̄, x̄_m)`` are sampled on the fly from the frozen EMA generator, ``x̄_m`` oriented to
the foreground. S outputs logits; its mask is their sigmoid.

- D_m (Eq. 9, the max side): generated masks ``x̄_m`` are real; S's masks on real images
  ``x_m = S(x)`` and on generated images ``x̂_m = S(x̄)`` are fake. Non-saturating BCE from
  logits, the real term once as in Eq. 9 (the released code counts it twice).
- S (Eq. 9, the min side, plus Eq. 10): ``λ·|x̄_m − S(x̄)|₁ − log D_m(S(x)) − log D_m(S(x̄))``
  with ``λ = segment.cons_weight`` (2, as the released code). ``segment.cons_loss: bce`` swaps
  the L1 for cross-entropy from S's logits; ``segment.adv_weight`` scales the D_m terms.

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

import json
import math
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from comgan_lib import speed
from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.losses import d_loss, g_loss
from comgan_lib.metrics.masks import coverage
from comgan_lib.nets.discriminators import ImageDiscriminator
from comgan_lib.nets.segmenter import UNet
from comgan_lib.orientation import (
    foreground_mask,
    generator_latents,
    given_orientation,
    orient_generator,
    orientation_warning,
)
from comgan_lib.rundir import RunDir, save_torch_atomic
from comgan_lib.runtime import pick_device
from comgan_lib.train import (
    ImageBank,
    TrainingDiverged,
    align_log,
    load_generator,
    refuse_other_settings,
    run_summary,
    spec_differences,
    to_device,
)

CHECKPOINT_FORMAT = 1
DEFAULT_NAME = "segmenter"


# Training.


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
    cons_loss: str = "l1"
    adv_weight: float = 1.0
    input_norm: bool = False

    def differences(self, other: dict) -> list[str]:
        return spec_differences(self, other)


def segmenter_spec(
    params: Params, name: str, generator: str, generator_step: int | None, orientation: str
) -> SegmenterSpec:
    """The spec of a stage-2 run from ``params.segment`` (depth from the resolution if unset)."""
    s, resolution = params.segment, params.data.resolution
    return SegmenterSpec(
        name=name,
        generator=generator,
        generator_step=generator_step,
        orientation=orientation,
        resolution=resolution,
        width=s.width,
        depth=s.depth or auto_depth(resolution),
        disc_width=s.disc_width,
        batch_size=s.batch_size,
        lr=s.lr,
        cons_weight=float(s.cons_weight),
        precision=s.precision,
        cons_loss=s.cons_loss,
        adv_weight=float(s.adv_weight),
        input_norm=s.input_norm,
    )


def build_segmenter(spec: dict) -> UNet:
    return UNet(3, spec["width"], spec["depth"], input_norm=spec.get("input_norm", False))


def build_mask_discriminator(resolution: int, width: int) -> ImageDiscriminator:
    """D_m: the image discriminator template on one-channel masks (given as ``2m − 1``)."""
    return ImageDiscriminator(resolution, width, in_channels=1)


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
    cons_loss: str = "l1"
    adv_weight: float = 1.0

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
            gen = self.g_fwd(**generator_latents(self.G, B, self.latent_rng, dev))
        x_gen = gen["image"].float()
        m_gen = foreground_mask(gen["mask"].float(), self.orientation)

        with speed.autocast(dev, o.precision):
            logits = self.s_fwd(speed.to_format(torch.cat([real, x_gen]), o)).float()
        pred_real, pred_gen = torch.sigmoid(logits).split(B)
        logits_gen = logits[B:]

        # D_m step (Eq. 9): generated masks → 1, S's masks on real and generated images → 0.
        with speed.autocast(dev, o.precision):
            d_mask = self.d_fwd(m_gen * 2 - 1).float()
            d_real = self.d_fwd(pred_real.detach() * 2 - 1).float()
            d_gen = self.d_fwd(pred_gen.detach() * 2 - 1).float()
        loss_d = d_loss(d_mask, d_real, d_gen)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # S step: both predictions → 1 under D_m, plus λ·L_cons to the generated mask (Eq. 10).
        if self.adv_weight > 0:
            self.D.requires_grad_(False)
            try:
                with speed.autocast(dev, o.precision):
                    a_real = self.d_fwd(pred_real * 2 - 1).float()
                    a_gen = self.d_fwd(pred_gen * 2 - 1).float()
            finally:
                self.D.requires_grad_(True)
            loss_adv = g_loss(a_real) + g_loss(a_gen)
        else:
            loss_adv = torch.zeros((), device=dev)
        if self.cons_loss == "bce":  # from logits; the generated mask is a soft target
            loss_cons = F.binary_cross_entropy_with_logits(logits_gen, m_gen)
        else:
            loss_cons = (pred_gen - m_gen).abs().mean()
        loss_s = self.cons_weight * loss_cons + self.adv_weight * loss_adv
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
        cons_loss=spec.cons_loss,
        adv_weight=spec.adv_weight,
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
        if (warning := orientation_warning(record)) is not None:
            warnings.warn(f"{generator_name}: {warning}", stacklevel=2)

    spec = segmenter_spec(
        params, name, generator_name, _generator_step(run, generator_name), record["orientation"]
    )
    seed = params.run.seed * 1_000_003 + zlib.crc32(name.encode())
    step_fn = build_stage2(G, spec, params, device, seed)
    S, D, opt_s, opt_d = step_fn.S, step_fn.D, step_fn.opt_s, step_fn.opt_d
    batches = torch.Generator().manual_seed(seed)
    latent_rng = step_fn.latent_rng

    start = 0
    if state is not None:
        refuse_other_settings(spec, state, ckpt_path, "segmenter name")
        S.load_state_dict(state["S"])
        D.load_state_dict(state["D_m"])
        opt_s.load_state_dict(state["opt_S"])
        opt_d.load_state_dict(state["opt_D"])
        torch.set_rng_state(state["rng_torch"].cpu())
        batches.set_state(state["rng_batches"].cpu())
        latent_rng.set_state(state["rng_latents"].cpu())
        start = state["step"]
    align_log(log_path, start if state is not None else None)
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
