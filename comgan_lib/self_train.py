"""Stage 2b (this workbook's addition, not the paper's): S learns the real images from its own
refined masks.

Stage 2 (``comgan_lib.stage2``) teaches S on generated images only, and S loses between generated
and real images (docs/FINDINGS.md, 2026-12-06). Here S's masks on the *real training images*,
refined by each image's colours (``comgan_lib.metrics.colour_em``), become targets, and a copy of
S is fine-tuned on them with cross-entropy from its logits. No ground truth is read: the targets
are S's own, so this is self-training, and the held-out split is never seen.

    result = self_train_segmenter(params, run)        # segmenter.pt -> segmenter_self.pt
    net, info = load_segmenter(run, SELF_TRAINED_NAME)

With ``segment.self_train_rounds`` R > 1 the fine-tuning repeats R times, each round a copy of the
previous round's S with targets re-drawn from it (``segmenter_self_round1``, ...,
``segmenter_self_round{R-1}``, then ``segmenter_self``): the targets get better with S, which a
single round of R times the steps does not give (docs/FINDINGS.md, 2026-12-07). With
``segment.self_train_border_flip`` each target that covers most of the image border is flipped
first: on generators that draw one species in the scene layer, S learns that species inside out
and the rounds would keep it so (docs/FINDINGS.md, 2026-12-07, fifth session).

Each round's targets are computed once from its base checkpoint (the stage-2 ``segmenter`` for
the first), which is left unchanged, so a resumed run sees the same targets; batches are drawn
with a seeded generator kept in the checkpoint, each image flipped left-right with its target at
probability 1/2. ``segment.self_train_steps`` steps (0: the stage is off), ``segment.lr``,
``segment.batch_size``, Adam with ``train.beta1`` / ``train.beta2``; checkpoints, log, resume and
the NaN guard as in stage 2. The checkpoint is a stage-2 checkpoint (``load_segmenter``, the
``segment`` command line and ``segment_eval`` read it under its name) plus ``self_train`` (its
spec) and the optimiser and generator states.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.metrics.colour_em import ITERATIONS, colour_em
from comgan_lib.metrics.masks import coverage
from comgan_lib.orientation import orient_per_image
from comgan_lib.rundir import RunDir, save_torch_atomic
from comgan_lib.runtime import pick_device
from comgan_lib.stage2 import DEFAULT_NAME, build_segmenter, predict_masks
from comgan_lib.train import (
    ImageBank,
    TrainingDiverged,
    align_log,
    refuse_other_settings,
    run_seed,
    run_summary,
    spec_differences,
)

SELF_TRAINED_NAME = "segmenter_self"


@dataclass
class SelfTrainSpec:
    """What identifies a stage-2b run; a checkpoint resumes only under the same spec."""

    name: str
    base: str
    base_step: int
    lr: float
    batch_size: int
    colour_em_iterations: int
    resolution: int
    border_flip: bool = False  # a default: checkpoints from before the option resume unchanged

    def differences(self, other: dict) -> list[str]:
        return spec_differences(self, other)


@torch.no_grad()
def pseudo_masks(
    net: torch.nn.Module, images: torch.Tensor, batch_size: int = 256, border_flip: bool = False
) -> torch.Tensor:
    """S's foreground probabilities on ``images``, refined by the per-image colour EM; with
    ``border_flip`` each refined mask that covers most of the image border is flipped
    (``orient_per_image``), so an image S holds inside out is not taught that way again."""
    masks = colour_em(images, predict_masks(net, images, batch_size))
    return orient_per_image(masks) if border_flip else masks


def _quantised_targets(
    net, images: torch.Tensor, device, chunk: int = 256, border_flip: bool = False
) -> torch.Tensor:
    """Pseudo masks of uint8 ``images`` (the bank's storage) as uint8 probabilities × 255: the
    targets of a paper-scale dataset then take a quarter of the memory of floats."""
    parts = []
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].to(device).float() / 127.5 - 1
        masks = pseudo_masks(net, x, border_flip=border_flip)
        parts.append((masks * 255).round().to(torch.uint8).cpu())
    return torch.cat(parts)


def self_train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    images: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """One step of cross-entropy from S's logits to soft targets; returns the loss (applied)."""
    loss = F.binary_cross_entropy_with_logits(net(images), targets)
    if torch.isfinite(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.detach()


def round_names(name: str, rounds: int) -> list[str]:
    """Checkpoint names of the rounds, in order: the last is ``name`` itself, so that one round
    is exactly stage 2b's single fine-tuning and whatever reads ``name`` reads the last round."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    return [f"{name}_round{k}" for k in range(1, rounds)] + [name]


def self_train_segmenter(
    params: Params,
    run: RunDir,
    base: str = DEFAULT_NAME,
    name: str = SELF_TRAINED_NAME,
    steps: int | None = None,
    bank: ImageBank | None = None,
    progress: bool = True,
    rounds: int | None = None,
) -> dict:
    """Fine-tune a copy of the stage-2 segmenter ``base`` on the real training images with its
    own colour-EM masks as targets (or resume, or just reload), ``rounds`` times in a row
    (default ``segment.self_train_rounds``): each round starts from the previous round's S and
    re-draws the targets from it, ``steps`` steps each. Returns what ``train_segmenter`` returns
    for the last round (``name``, ``steps``, ``sec_per_step``, ``checkpoint``, ``log``, ``last``)
    plus ``base``, ``generator``, ``orientation`` and ``rounds``."""
    rounds = params.segment.self_train_rounds if rounds is None else rounds
    previous = base
    for round_name in round_names(name, rounds):
        result, bank = _self_train_round(params, run, previous, round_name, steps, bank, progress)
        previous = round_name
    return result | {"base": base, "rounds": rounds}


def _self_train_round(
    params: Params,
    run: RunDir,
    base: str,
    name: str,
    steps: int | None,
    bank: ImageBank | None,
    progress: bool,
) -> tuple[dict, ImageBank]:
    """One round: a copy of ``base`` fine-tuned on its own colour-EM masks, saved as ``name``;
    returns its summary and the image bank (built here on first use, reused by later rounds)."""
    s = params.segment
    steps = s.self_train_steps if steps is None else steps
    device = pick_device(params.run.device)
    base_path = run.path("checkpoints", f"{base}.pt")
    if not base_path.exists():
        raise UserError(f"no segmenter checkpoint at {base_path}; train stage 2 first")
    base_state = torch.load(base_path, map_location=device, weights_only=False)
    ckpt_path = run.path("checkpoints", f"{name}.pt")
    log_path = run.path("logs", f"{name}.jsonl")
    spec = SelfTrainSpec(
        name=name,
        base=base,
        base_step=base_state["step"],
        lr=s.lr,
        batch_size=s.batch_size,
        colour_em_iterations=ITERATIONS,
        resolution=base_state["spec"]["resolution"],
        border_flip=s.self_train_border_flip,
    )
    if spec.resolution != params.data.resolution:
        raise UserError(
            f"segmenter '{base}' is {spec.resolution}px, data.resolution is "
            f"{params.data.resolution}"
        )

    net = build_segmenter(base_state["spec"]).to(device)
    net.load_state_dict(base_state["S"])
    if bank is None:
        bank = ImageBank.from_params(params)
    images = bank.images  # uint8, unflipped; batches go to [-1, 1] as the bank's own do
    # From the base S, before any update.
    targets = _quantised_targets(net, images, device, border_flip=spec.border_flip)

    seed = run_seed(params, name)
    torch.manual_seed(seed)
    betas = (params.train.beta1, params.train.beta2)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr, betas=betas)
    batches = torch.Generator().manual_seed(seed)
    start = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        refuse_other_settings(spec, {"spec": state["self_train"]}, ckpt_path, "segmenter name")
        net.load_state_dict(state["S"])
        opt.load_state_dict(state["opt_S"])
        batches.set_state(state["rng_batches"].cpu())
        torch.set_rng_state(state["rng_torch"].cpu())
        start = state["step"]
        del state
    align_log(log_path, start if ckpt_path.exists() else None)

    def save(step: int) -> None:
        keep = ("spec", "generator", "generator_step", "orientation", "threshold")
        save_torch_atomic(
            {k: base_state[k] for k in keep if k in base_state}
            | {
                "format": base_state.get("format", 1),
                "step": step,
                "self_train": spec.__dict__,
                "S": net.state_dict(),
                "opt_S": opt.state_dict(),
                "rng_batches": batches.get_state(),
                "rng_torch": torch.get_rng_state(),
            },
            ckpt_path,
        )

    net.train()
    B = spec.batch_size
    bar = tqdm(total=steps, initial=start, desc=name, disable=not progress, leave=False)
    window_start, window_steps, t_begin = time.perf_counter(), 0, time.perf_counter()
    step = start
    with open(log_path, "a") as log:
        while step < steps:
            step += 1
            idx = torch.randint(len(images), (B,), generator=batches)
            flip = torch.rand(B, generator=batches) < 0.5
            x, t = images[idx].float() / 127.5 - 1, targets[idx].float() / 255
            x[flip], t[flip] = x[flip].flip(-1), t[flip].flip(-1)
            loss = self_train_step(net, opt, x.to(device), t.to(device))
            if not torch.isfinite(loss):
                kept = f"step {start}" if ckpt_path.exists() else "none yet"
                raise TrainingDiverged(
                    f"{name}: non-finite loss at step {step} ({loss.item():.4g}); last good "
                    f"checkpoint: {kept} ({ckpt_path}). Try a lower segment.lr."
                )
            window_steps += 1
            bar.update(1)
            if step % s.log_every == 0 or step == steps:
                now = time.perf_counter()
                line = {
                    "step": step,
                    "loss": loss.item(),
                    "coverage_target": float(coverage(t).mean()),
                    "sec_per_step": (now - window_start) / window_steps,
                    "wall_s": now - t_begin,
                }
                window_start, window_steps = now, 0
                log.write(json.dumps(line) + "\n")
                log.flush()
            if step % s.checkpoint_every == 0 or step == steps:
                save(step)
                start = step
    bar.close()
    if not ckpt_path.exists():
        save(step)
    summary = run_summary(run, name, step, ckpt_path, log_path)
    return summary | {
        "generator": base_state["generator"],
        "orientation": base_state["orientation"],
    }, bank
