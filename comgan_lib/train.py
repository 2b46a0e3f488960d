"""Stage-1 training: one GAN loop for every generator kind (SimpleGAN, Π1, Π2, ComGAN, and ComGAN
with codes: ``comgan_info`` and ``ds_comgan``).

Usage (from a notebook)::

    bank = ImageBank.from_params(params)
    result = train_generator(params, run, name="comgan_beta1", kind="comgan", beta_binary=1.0,
                             bank=bank)
    G = load_generator(run, "comgan_beta1")          # the EMA generator

Command line (one process, or several GPUs with DistributedDataParallel; docs/PAPER_SCALE.md)::

    python -m comgan_lib.train params/synthetic.yaml --kind comgan --beta 1
    torchrun --standalone --nproc_per_node=4 -m comgan_lib.train params/cub.yaml

Each run ``name`` owns ``checkpoints/<name>.pt`` and ``logs/<name>.jsonl`` in the run folder.
Checkpoints are written atomically every ``train.checkpoint_every`` steps and at the end; calling
``train_generator`` again resumes from the last one (a killed process loses at most that many
steps, and the log is cut back to the checkpoint so it continues without gaps or duplicates). A run
that already reached its step count is not retrained. A non-finite loss stops training with
``TrainingDiverged``; the last good checkpoint is kept.

One step (Eq. 3 / Eq. 11): D takes real images to 1 and the composite to 0 (non-saturating BCE from
logits); G takes the composite to 1 and pays ``β·L_binary`` on its mask. Generators with codes also
pay ``info_weight · L_info`` (Eq. 8): two code classifiers Q_f and Q_b, trained jointly with G,
recover f from the unmasked foreground F and b from the background B (cross-entropy, the InfoGAN
lower bound). DS-ComGAN's trunk image x̄_z is judged by the same D as the composite (Eq. 7).
With ``train.bg_swap`` (DS-ComGAN only; this workbook's, not the paper's) D also judges each
composite over the batch's previous scene layer, ``swapped_composite``, as a further fake; with
``train.mask_floor`` (DS-ComGAN only, likewise) each mask under that share of its image pays
``mask_floor_loss``, counted with ``β·L_binary`` in the logged ``loss_binary``.
The step itself is ``Stage1Step`` (built by ``build_stage1``), which the benchmark
(``comgan_lib.bench``) times; how it runs (precision, memory format, compilation) is set by the
``train.*`` options of ``comgan_lib.speed``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import zlib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from comgan_lib import distributed as dist_util
from comgan_lib import speed
from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.losses import (
    EMA,
    binary_entropy_from_logits,
    binary_loss,
    d_loss,
    g_loss,
    mask_floor_loss,
)
from comgan_lib.metrics.masks import trivial_solution_summary
from comgan_lib.nets import GENERATORS, ImageDiscriminator, build_generator
from comgan_lib.rundir import RunDir, save_torch_atomic
from comgan_lib.runtime import pick_device

CHECKPOINT_FORMAT = 1


def run_name(kind: str, beta_binary: float) -> str:
    """The name notebooks use for a stage-1 run: ``<kind>_beta<β>``, e.g. ``comgan_beta1``."""
    return f"{kind}_beta{beta_binary:g}"


def snapshot_name(name: str, step: int) -> str:
    """A frozen copy of run ``name`` at ``step`` (written at ``train.ladder_steps``), loadable with
    ``load_generator`` like any run: Table 2 compares every model at the same step count."""
    return f"{name}@{step}"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the kept checkpoint."""


class ImageBank:
    """The training images in memory as uint8, sampled in seeded random batches with flips.

    Keeping the (small) training set in memory makes sampling cheap on a CPU and makes the batch
    sequence part of the checkpoint (the sampler's generator state), so a resumed run sees the
    same batches it would have seen.
    """

    def __init__(self, images: torch.Tensor, flip: bool = True):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [N,3,H,W], got {tuple(images.shape)}")
        self.images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        self.flip = flip

    @classmethod
    def from_params(cls, params: Params) -> ImageBank:
        from comgan_lib.data import build_dataset, stack_items

        dataset = build_dataset(params, params.data.train_split)
        images = stack_items(dataset, batch_size=256, num_workers=params.data.num_workers)["image"]
        return cls(images, flip=params.train.flip)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def resolution(self) -> int:
        return self.images.shape[-1]

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self), (batch_size,), generator=generator)
        x = self.images[idx].float() / 127.5 - 1
        if self.flip:
            flip = torch.rand(batch_size, generator=generator) < 0.5
            x[flip] = x[flip].flip(-1)
        return x


@dataclass
class RunSpec:
    """What identifies a stage-1 run; a checkpoint resumes only under the same spec."""

    name: str
    kind: str
    beta_binary: float
    resolution: int
    z_dim: int
    gen_width: int
    head_blocks: int
    z_scale: float
    disc_width: int
    batch_size: int
    lr: float
    precision: str
    num_codes: int = 0
    tied_codes: bool = False
    info_width: int = 0
    info_weight: float = 0.0
    head_factor: int = 0
    disc_init: str = "orthogonal"
    bg_swap: bool = False
    mask_floor: float = 0.0
    trunk_from: str = ""

    def differences(self, other: dict) -> list[str]:
        return spec_differences(self, other)


def spec_differences(spec, other: dict) -> list[str]:
    """``"key: old -> new"`` for every field of the dataclass ``spec`` that the checkpoint's spec
    dict ``other`` holds otherwise; a key missing from an older checkpoint had its (then implicit)
    default value. Used by both stages' resume check (``refuse_other_settings``)."""
    defaults = {f.name: f.default for f in fields(spec) if f.default is not MISSING}
    old = {k: other.get(k, defaults.get(k)) for k in spec.__dict__}
    return [f"{k}: {old[k]!r} -> {v!r}" for k, v in spec.__dict__.items() if old[k] != v]


def _grad_norm(parameters) -> float:
    norms = [p.grad.detach().float().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _truncate_log(path: Path, last_step: int) -> None:
    """Keep only log lines up to ``last_step`` (the steps after a checkpoint are redone)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["step"] <= last_step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(ln + "\n" for ln in kept))
    os.replace(tmp, path)


def align_log(path: Path, resumed_step: int | None) -> None:
    """Make a training log match its checkpoint: keep the lines up to ``resumed_step``, or, when
    nothing was resumed, delete a log that belongs to a run that never saved."""
    if resumed_step is not None:
        _truncate_log(path, resumed_step)
    elif path.exists():
        path.unlink()


def read_log(run: RunDir, name: str) -> list[dict]:
    path = run.path("logs", f"{name}.jsonl")
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _autocast(device: torch.device, precision: str):
    return speed.autocast(device, precision)


# The composite, DS-ComGAN's x̄_z (Eq. 7), and the composite over another sample's B (train.bg_swap).
FAKES = ("image", "trunk_image", "image_swapped")


def make_run_spec(params: Params, name: str, kind: str, beta_binary: float) -> RunSpec:
    """The RunSpec of stage-1 run ``name`` under ``params``."""
    t, m = params.train, params.model
    spec = RunSpec(
        name=name,
        kind=kind,
        beta_binary=float(beta_binary),
        resolution=params.data.resolution,
        z_dim=m.z_dim,
        gen_width=m.gen_width,
        head_blocks=m.head_blocks,
        z_scale=m.z_scale,
        disc_width=m.disc_width,
        disc_init=m.disc_init,
        batch_size=t.batch_size,
        lr=t.lr,
        precision=t.precision,
    )
    if getattr(GENERATORS[kind], "has_codes", False):
        spec.num_codes, spec.tied_codes = m.num_codes, m.tied_codes
        spec.info_width, spec.info_weight = m.info_width, t.info_weight
    if kind == "ds_comgan":
        spec.head_factor, spec.bg_swap, spec.mask_floor = m.ds_head_factor, t.bg_swap, t.mask_floor
        spec.trunk_from = t.ds_trunk_from
    return spec


def from_scratch(params: Params) -> Params:
    """``params`` with ``train.ds_trunk_from`` cleared: DS-ComGAN's Φ from its own initialisation,
    as the paper trains it (03 scores Table 2's DS-ComGAN row on such a run, at equal steps)."""
    return replace(params, train=replace(params.train, ds_trunk_from=""))


def start_trunk_from(run: RunDir, source: str, G: nn.Module, ema: EMA) -> None:
    """Copy the EMA feature generator Φ of stage-1 run ``source`` into ``G`` and its EMA (a fresh
    DS-ComGAN: only Φ is shared; the heads, D and Q start from their own initialisation)."""
    path = run.path("checkpoints", f"{source}.pt")
    if not path.exists():
        raise UserError(
            f"train.ds_trunk_from names the run {source!r}, but {path} does not exist; train it"
            " first (02 trains comgan_beta1) or set train.ds_trunk_from: ''"
        )
    state = torch.load(path, map_location="cpu", weights_only=False)
    phi = {k[4:]: v for k, v in state["G_ema"].items() if k.startswith("phi.")}
    try:
        for model in (G, ema.model):
            model.phi.load_state_dict(phi)
    except RuntimeError as err:
        raise UserError(f"{path}'s feature generator does not fit this run's: {err}") from None


def swapped_composite(out: dict[str, torch.Tensor]) -> torch.Tensor:
    """``M ⊙ F + (1 − M) ⊙ B'`` with B' the scene layer of the batch's previous sample.

    Under Assumption 1 object and scene are independent, so a real-looking composite must stay
    real-looking over another scene. A scene layer that draws the object (under an empty or
    partial mask) shows it twice here, or an object without a mask shows none: D learns to reject
    both, and G's gradient through this term reaches B and M where the plain composite gives none.
    """
    mask = out["mask"]
    return out["fg"] * mask + out["bg"].roll(1, dims=0) * (1 - mask)


@dataclass
class StepResult:
    """What one stage-1 step computed (G's gradients are still in place, not yet applied)."""

    loss_d: torch.Tensor
    loss_g: torch.Tensor
    loss_adv: torch.Tensor
    loss_bin: torch.Tensor
    loss_info: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: list[torch.Tensor]
    out: dict[str, torch.Tensor]
    code_logits: dict[str, torch.Tensor] | None = None
    targets: dict[str, torch.Tensor] | None = None


class CodeClassifierPair(nn.Module):
    """Q_f and Q_b as one module whose forward classifies both codes (what DDP can wrap)."""

    def __init__(self, Q: nn.ModuleDict):
        super().__init__()
        self.Q = Q

    def forward(self, fg: torch.Tensor, bg: torch.Tensor):
        return self.Q["fg"].classify_code(fg), self.Q["bg"].classify_code(bg)


@dataclass
class Stage1Step:
    """One stage-1 step (Eq. 3 / 7 / 8 / 11), shared by ``train_generator`` and the benchmark.

    ``grads(real, latents)`` runs the D step (forward, backward, D's update) and the G step's
    forward and backward; ``update(step)`` then applies G's (and Q's) update and the EMA. The loop
    inspects the gradients between the two (log lines) and stops there on a non-finite loss.

    ``options`` say how the networks run (``comgan_lib.speed``), never what they compute. In the
    G step D's weights are frozen: their gradients there were never used (the D step clears them
    first), so skipping them changes nothing but the time (``freeze_d=False`` restores the old way,
    for the benchmark). Built by ``build_stage1``; with ``ddp`` the networks are wrapped in
    DistributedDataParallel (``comgan_lib.distributed``).
    """

    G: nn.Module
    D: nn.Module
    Q: nn.ModuleDict | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: EMA
    beta: float
    info_weight: float
    device: torch.device
    options: speed.SpeedOptions = field(default_factory=speed.SpeedOptions)
    ddp: bool = False
    freeze_d: bool = True
    bg_swap: bool = False
    mask_floor: float = 0.0

    def __post_init__(self):
        o, dev = self.options, self.device
        g, d = self.G, self.D
        q = CodeClassifierPair(self.Q) if self.Q is not None else None
        if self.ddp:
            g, d = dist_util.wrap(g, dev), dist_util.wrap(d, dev)
            # Each Q's real/fake layer is unused: only the code head is trained.
            q = dist_util.wrap(q, dev, find_unused=True) if q is not None else None
        self.g_fwd = speed.maybe_compile(g, o, dev, "G")
        self.d_fwd = speed.maybe_compile(d, o, dev, "D")
        # The G step only needs D's input gradients; under DDP it calls D itself (nothing to sync).
        self.d_judge = speed.maybe_compile(self.D, o, dev, "D") if self.ddp else self.d_fwd
        self.q_fwd = speed.maybe_compile(q, o, dev, "Q") if q is not None else None

    @property
    def g_compiled(self) -> bool:
        """Whether G runs compiled (and has not fallen back to eager)."""
        return isinstance(self.g_fwd, speed.CompiledOrEager) and self.g_fwd.compiled is not None

    def grads(self, real: torch.Tensor, latents: dict, want_log: bool = False) -> StepResult:
        o, dev = self.options, self.device
        speed.apply_backend_flags(dev, o)
        real = speed.to_format(real, o)
        # D step: real → 1, every fake → 0.
        with speed.autocast(dev, o.precision):
            out = self.g_fwd(**latents)
            if self.bg_swap:
                out["image_swapped"] = swapped_composite(out)
            real_logits = self.d_fwd(real).float()
            fake_logits = [self.d_fwd(out[k].detach()).float() for k in FAKES if k in out]
        loss_d = d_loss(real_logits, *fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # G step: composite → 1, plus β·L_binary on the mask (and L_info for coded generators).
        if want_log and self.G.has_mask:
            out["mask"].retain_grad()
        if self.freeze_d:
            self.D.requires_grad_(False)
        try:
            with speed.autocast(dev, o.precision):
                gen_logits = [self.d_judge(out[k]).float() for k in FAKES if k in out]
                code_logits = None
                if self.q_fwd is not None:
                    logits_f, logits_b = self.q_fwd(out["fg"], out["bg"])
                    code_logits = {"fg": logits_f.float(), "bg": logits_b.float()}
        finally:
            if self.freeze_d:
                self.D.requires_grad_(True)
        loss_adv = sum(g_loss(logits) for logits in gen_logits)
        loss_bin = binary_loss(out["mask_logits"], self.beta) if self.G.has_mask else loss_adv * 0
        if self.mask_floor > 0:
            loss_bin = loss_bin + mask_floor_loss(out["mask_logits"], self.mask_floor)
        loss_info, targets = loss_adv * 0, None
        if code_logits is not None:
            targets = {"fg": latents["f"], "bg": latents["b"]}
            loss_info = self.info_weight * sum(
                F.cross_entropy(code_logits[c], targets[c]) for c in ("fg", "bg")
            )
        loss_g = loss_adv + loss_bin + loss_info
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        return StepResult(
            loss_d,
            loss_g,
            loss_adv,
            loss_bin,
            loss_info,
            real_logits,
            fake_logits,
            out,
            code_logits,
            targets,
        )

    def update(self, step: int) -> None:
        """Apply G's (and Q's) gradients and blend G into its EMA; ``step`` counts from 1."""
        self.opt_g.step()
        self.ema.update(self.G, step - 1)


def build_stage1(
    spec: RunSpec,
    params: Params,
    device: torch.device,
    options: speed.SpeedOptions | None = None,
    ctx: dist_util.DistContext = dist_util.SINGLE,
    seed: int | None = None,
) -> Stage1Step:
    """G, D (and Q), their optimisers and the EMA of G, initialised from ``seed`` (default: the
    run's seed), as one ``Stage1Step``."""
    t = params.train
    options = options or speed.SpeedOptions.for_stage1(params)
    speed.apply_backend_flags(device, options)
    if seed is None:
        seed = run_seed(params, spec.name)
    torch.manual_seed(seed)
    coded = getattr(GENERATORS[spec.kind], "has_codes", False)
    G = _build_from_spec(spec.__dict__)
    D = ImageDiscriminator(spec.resolution, spec.disc_width, init=spec.disc_init)
    Q = build_code_classifiers(spec.__dict__) if coded else None
    if t.sync_batchnorm:
        G, D = (dist_util.convert_sync_batchnorm(m, device, ctx) for m in (G, D))
        Q = dist_util.convert_sync_batchnorm(Q, device, ctx) if Q is not None else None
    fmt = speed.memory_format(options)
    for m in (G, D, Q):
        if m is not None:
            m.to(device=device, memory_format=fmt).train()
    ema = EMA(G, t.ema_decay)
    # Q_f and Q_b are optimised with G, as in the reference (they maximise the same L_info bound).
    g_params = list(G.parameters()) + (list(Q.parameters()) if Q is not None else [])
    betas = (t.beta1, t.beta2)
    return Stage1Step(
        G=G,
        D=D,
        Q=Q,
        opt_g=speed.adam(g_params, t.lr, betas, options, device),
        opt_d=speed.adam(D.parameters(), t.lr, betas, options, device),
        ema=ema,
        beta=spec.beta_binary,
        info_weight=spec.info_weight,
        device=device,
        options=options,
        ddp=ctx.enabled,
        bg_swap=spec.bg_swap,
        mask_floor=spec.mask_floor,
    )


def refuse_other_settings(spec, state: dict, ckpt_path: Path, name_kind: str) -> None:
    """Resume only under the settings a checkpoint was trained with (either stage)."""
    diff = spec.differences(state["spec"])
    if diff:
        raise UserError(
            f"{ckpt_path} was trained with other settings ({'; '.join(diff)}); "
            f"delete it or choose another {name_kind}"
        )


def run_seed(params: Params, name: str) -> int:
    return params.run.seed * 1_000_003 + zlib.crc32(name.encode())


def train_generator(
    params: Params,
    run: RunDir,
    name: str | None = None,
    kind: str | None = None,
    beta_binary: float | None = None,
    steps: int | None = None,
    bank: ImageBank | None = None,
    progress: bool = True,
    ctx: dist_util.DistContext | None = None,
) -> dict:
    """Train (or resume, or just reload) one stage-1 run; returns a summary dict.

    ``ctx`` (default: single process) is this process's place among several launched by
    ``torchrun`` (see ``comgan_lib.distributed``); only rank 0 writes the checkpoint and log."""
    ctx = ctx or dist_util.SINGLE
    kind = kind or params.model.kind
    name = name or kind
    beta = params.train.beta_binary if beta_binary is None else beta_binary
    steps = params.train.steps if steps is None else steps
    t = params.train
    spec = make_run_spec(params, name, kind, beta)
    device = pick_device(params.run.device)
    if ctx.enabled:
        device = dist_util.init(ctx, params.run.device)
    local_batch = dist_util.local_batch(t.batch_size, ctx)
    ckpt_path = run.path("checkpoints", f"{name}.pt")
    log_path = run.path("logs", f"{name}.jsonl")

    seed = run_seed(params, name)
    step_fn = build_stage1(spec, params, device, ctx=ctx, seed=seed)
    G, D, Q, ema = step_fn.G, step_fn.D, step_fn.Q, step_fn.ema
    opt_g, opt_d = step_fn.opt_g, step_fn.opt_d
    if ctx.rank:  # rank 0 continues the single-process stream; the others get their own
        torch.manual_seed(dist_util.rank_seed(seed, ctx))
    batches = torch.Generator().manual_seed(dist_util.rank_seed(seed, ctx))

    start = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        refuse_other_settings(spec, state, ckpt_path, "run name")
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if Q is not None:
            Q.load_state_dict(state["Q"])
        ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_G"])
        opt_d.load_state_dict(state["opt_D"])
        start = state["step"]
        ranks = state.get("rng_ranks")
        # The checkpoint was loaded onto the run's device; RNG states are restored from the CPU.
        if ctx.rank == 0:
            torch.set_rng_state(state["rng_torch"].cpu())
            batches.set_state(state["rng_batches"].cpu())
        elif ranks and len(ranks) == ctx.world_size:
            torch.set_rng_state(ranks[ctx.rank]["torch"].cpu())
            batches.set_state(ranks[ctx.rank]["batches"].cpu())
        else:  # resumed on another number of processes: a fresh stream per rank and step
            torch.manual_seed(dist_util.rank_seed(seed, ctx) + start)
            batches.manual_seed(dist_util.rank_seed(seed, ctx) + start)
        if ctx.is_main:
            _truncate_log(log_path, start)
        del state
    else:
        if log_path.exists() and ctx.is_main:
            log_path.unlink()  # a log without a checkpoint belongs to a run that never saved
        if spec.trunk_from:
            start_trunk_from(run, spec.trunk_from, G, ema)

    def save(step: int, path: Path = ckpt_path) -> None:
        # Every rank's random state (a collective: all ranks call save), written by rank 0.
        rng = {"torch": torch.get_rng_state(), "batches": batches.get_state()}
        ranks = ctx.gather_objects(rng)
        if not ctx.is_main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "spec": spec.__dict__,
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": ema.state_dict(),
            "Q": Q.state_dict() if Q is not None else None,
            "opt_G": opt_g.state_dict(),
            "opt_D": opt_d.state_dict(),
            "rng_torch": rng["torch"],
            "rng_batches": rng["batches"],
        }
        if ctx.enabled:
            state["rng_ranks"] = ranks
            state["world_size"] = ctx.world_size
        save_torch_atomic(state, path)

    if bank is None and start < steps:
        bank = ImageBank.from_params(params)
    if bank is not None and bank.resolution != spec.resolution:
        raise ValueError(f"image bank is {bank.resolution}px, the run is {spec.resolution}px")

    groups = G.parameter_groups()
    show = progress and ctx.is_main
    bar = tqdm(total=steps, initial=start, desc=name, disable=not show, leave=False)
    window_start, window_steps, t_begin = time.perf_counter(), 0, time.perf_counter()
    step = start
    log_file = open(log_path, "a") if ctx.is_main else contextlib.nullcontext()  # noqa: SIM115
    with log_file as log:
        while step < steps:
            step += 1
            want_log = step % t.log_every == 0 or step == steps
            real = to_device(bank.sample(local_batch, batches), device)
            latents = G.sample_latents(local_batch, device=device)
            r = step_fn.grads(real, latents, want_log and ctx.is_main)
            out = r.out

            if not ctx.all_finite(r.loss_d, r.loss_g):
                kept = f"step {start}" if ckpt_path.exists() else "none yet"
                raise TrainingDiverged(
                    f"{name}: non-finite loss at step {step} (loss_D {r.loss_d.item():.4g}, "
                    f"loss_G {r.loss_g.item():.4g}); last good checkpoint: {kept} ({ckpt_path}). "
                    "Try a lower train.lr or precision fp32."
                )
            record = None
            if want_log and ctx.is_main:
                record = {
                    "step": step,
                    "loss_d": r.loss_d.item(),
                    "loss_g": r.loss_g.item(),
                    "loss_adv": r.loss_adv.item(),
                    "loss_binary": r.loss_bin.item(),
                    "d_real": torch.sigmoid(r.real_logits).mean().item(),
                    "d_fake": torch.sigmoid(r.fake_logits[0]).mean().item(),
                }
                if Q is not None:
                    record["loss_info"] = r.loss_info.item()
                    for c, code in (("fg", "f"), ("bg", "b")):
                        hits = r.code_logits[c].argmax(1) == r.targets[c]
                        record[f"info_acc_{code}"] = hits.float().mean().item()
                for group, plist in groups.items():
                    record[f"grad_norm_{group}"] = _grad_norm(plist)
                if G.has_mask:
                    m = out["mask"]
                    # A compiled G composes inside its graph: its mask output gets no gradient
                    # there, so the diagnostic is not available (null) rather than 0.
                    missing = None if step_fn.g_compiled else 0.0
                    record["mask_pixel_grad"] = (
                        float(m.grad.abs().mean()) if m.grad is not None else missing
                    )
                    record["mask_mean"] = m.detach().mean().item()
                    record["mask_entropy"] = float(
                        binary_entropy_from_logits(out["mask_logits"].detach().float()).mean()
                    )
                    record.update(trivial_solution_summary(m, out["fg"], out["bg"]))
            step_fn.update(step)
            window_steps += 1
            bar.update(1)

            if record is not None:
                now = time.perf_counter()
                record["sec_per_step"] = (now - window_start) / window_steps
                record["wall_s"] = now - t_begin
                if ctx.enabled:
                    record["world_size"] = ctx.world_size
                window_start, window_steps = now, 0
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(d=f"{record['loss_d']:.2f}", g=f"{record['loss_g']:.2f}")
            if step % t.checkpoint_every == 0 or step == steps:
                save(step)
                start = step
            if step == t.ladder_steps:
                save(step, run.path("checkpoints", f"{snapshot_name(name, step)}.pt"))
    bar.close()
    if not ckpt_path.exists():
        save(step)
    ctx.barrier()  # the checkpoint is complete before any rank reads it
    return {"kind": kind, "beta_binary": beta} | run_summary(run, name, step, ckpt_path, log_path)


def run_summary(run: RunDir, name: str, step: int, ckpt_path: Path, log_path: Path) -> dict:
    """What a finished training loop (stage 1 or 2) returns: its step count, mean step time from
    the log, file paths and the last log line."""
    records = read_log(run, name)
    timed = [r["sec_per_step"] for r in records if "sec_per_step" in r]
    return {
        "name": name,
        "steps": step,
        "sec_per_step": sum(timed) / len(timed) if timed else None,
        "checkpoint": str(ckpt_path),
        "log": str(log_path),
        "last": records[-1] if records else None,
    }


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU batch on ``device``; through pinned memory and an asynchronous copy on CUDA."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _build_from_spec(spec: dict):
    return build_generator(
        spec["kind"],
        spec["resolution"],
        spec["z_dim"],
        spec["gen_width"],
        spec["z_scale"],
        spec["head_blocks"],
        num_codes=spec.get("num_codes", 0),
        tied_codes=spec.get("tied_codes", False),
        head_factor=spec.get("head_factor") or 8,
    )


def build_code_classifiers(spec: dict) -> nn.ModuleDict:
    """Q_f and Q_b (Eq. 8): two discriminator-shaped networks of which only the code head is used,
    reading the unmasked F and B as in the released code."""
    res = spec["resolution"]
    return nn.ModuleDict(
        {
            c: ImageDiscriminator(res, spec["info_width"], code_dim=spec["num_codes"])
            for c in ("fg", "bg")
        }
    )


def _load_checkpoint(run: RunDir, name: str, device) -> dict:
    path = run.path("checkpoints", f"{name}.pt")
    if not path.exists():
        raise UserError(f"no checkpoint for run '{name}' at {path}; train it first")
    return torch.load(path, map_location=device, weights_only=False)


def load_generator(run: RunDir, name: str, device: str | torch.device = "cpu", ema: bool = True):
    """The trained generator of run ``name`` (the EMA copy by default), in eval mode."""
    state = _load_checkpoint(run, name, device)
    G = _build_from_spec(state["spec"])
    G.load_state_dict(state["G_ema" if ema else "G"])
    return G.to(device).eval()


def load_code_classifiers(run: RunDir, name: str, device: str | torch.device = "cpu"):
    """The trained Q_f and Q_b of a run with codes (``ModuleDict`` with keys fg, bg), eval mode."""
    state = _load_checkpoint(run, name, device)
    if not state.get("Q"):
        raise UserError(f"run '{name}' has no code classifiers (kind {state['spec']['kind']})")
    Q = build_code_classifiers(state["spec"])
    Q.load_state_dict(state["Q"])
    return Q.to(device).eval()


@torch.no_grad()
def sample(G, n: int, seed: int = 0, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """``n`` samples from ``G`` with a fixed seed, every output concatenated on the CPU."""
    # All latents at once, so the samples do not depend on the batch size.
    gen = torch.Generator().manual_seed(seed)
    if hasattr(G, "sample_latents"):
        latents = G.sample_latents(n, generator=gen, device="cpu")
    else:  # any module with sample_z (e.g. a hand-made test generator)
        latents = {"z": G.sample_z(n, generator=gen, device="cpu")}
    return generate(G, latents, batch_size)


@torch.no_grad()
def generate(G, latents: dict[str, torch.Tensor], batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Run ``G`` on given latents (z, and f, b for coded models) in batches; outputs on the CPU,
    with the latents included."""
    device = next(G.parameters()).device
    n = len(latents["z"])
    parts = []
    for start in range(0, n, batch_size):
        chunk = {k: v[start : start + batch_size] for k, v in latents.items()}
        out = G(**{k: v.to(device) for k, v in chunk.items()})
        parts.append({k: v.float().cpu() for k, v in out.items()} | chunk)
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def main(argv: list[str] | None = None) -> int:
    """``python -m comgan_lib.train PARAMS`` (one process) or ``torchrun --nproc_per_node=N -m
    comgan_lib.train PARAMS`` (N processes, DDP): train one stage-1 run into the run folder the
    runner uses, so the notebooks then find it finished and only reload it."""
    from comgan_lib.config import add_override_argument, load_params

    parser = argparse.ArgumentParser(
        prog="python -m comgan_lib.train",
        description="Train one stage-1 run (checkpoints and log in outputs/<run>/); under "
        "torchrun, on several GPUs with DistributedDataParallel. Resumes an unfinished run.",
    )
    parser.add_argument("params", help="parameter file, e.g. params/cub.yaml")
    parser.add_argument("--kind", choices=tuple(GENERATORS), help="generator (model.kind)")
    parser.add_argument("--beta", type=float, help="weight of L_binary (train.beta_binary)")
    parser.add_argument(
        "--name", help="run name (default <kind>_beta<beta>, the name the notebooks use)"
    )
    parser.add_argument("--steps", type=int, help="steps (train.steps)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default output.root/run.name)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_override_argument(parser)
    args = parser.parse_args(argv)
    ctx = dist_util.from_environment()
    try:
        params = load_params(args.params, args.overrides)
        kind = args.kind or params.model.kind
        beta = params.train.beta_binary if args.beta is None else args.beta
        name = args.name or run_name(kind, beta)
        run = RunDir.for_params(params, args.run_dir)
        result = train_generator(
            params,
            run,
            name=name,
            kind=kind,
            beta_binary=beta,
            steps=args.steps,
            progress=not args.quiet,
            ctx=ctx,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        dist_util.shutdown()
    if ctx.is_main:
        per_step = result["sec_per_step"]
        timing = f", {per_step:.3f} s per step" if per_step else ""
        world = f" on {ctx.world_size} processes" if ctx.enabled else ""
        print(f"{name}: {result['steps']} steps{world}{timing}; checkpoint {result['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
