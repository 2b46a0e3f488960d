"""Stage-1 training: one GAN loop for every generator kind (SimpleGAN, Π1, Π2, ComGAN, and ComGAN
with codes: ``comgan_info`` and ``ds_comgan``).

Usage (from a notebook)::

    bank = ImageBank.from_params(params)
    result = train_generator(params, run, name="comgan_beta1", kind="comgan", beta_binary=1.0,
                             bank=bank)
    G = load_generator(run, "comgan_beta1")          # the EMA generator

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
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import zlib
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from comgan_lib.config import Params
from comgan_lib.errors import UserError
from comgan_lib.losses import EMA, binary_entropy_from_logits, binary_loss, d_loss, g_loss
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
        images = stack_items(dataset, batch_size=256)["image"]
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

    def differences(self, other: dict) -> list[str]:
        # A key missing from an older checkpoint had its (then implicit) default value.
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        old = {k: other.get(k, defaults.get(k)) for k in self.__dict__}
        return [f"{k}: {old[k]!r} -> {v!r}" for k, v in self.__dict__.items() if old[k] != v]


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


def read_log(run: RunDir, name: str) -> list[dict]:
    path = run.path("logs", f"{name}.jsonl")
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_generator(
    params: Params,
    run: RunDir,
    name: str | None = None,
    kind: str | None = None,
    beta_binary: float | None = None,
    steps: int | None = None,
    bank: ImageBank | None = None,
    progress: bool = True,
) -> dict:
    """Train (or resume, or just reload) one stage-1 run; returns a summary dict."""
    kind = kind or params.model.kind
    name = name or kind
    beta = params.train.beta_binary if beta_binary is None else beta_binary
    steps = params.train.steps if steps is None else steps
    t = params.train
    spec = RunSpec(
        name=name,
        kind=kind,
        beta_binary=float(beta),
        resolution=params.data.resolution,
        z_dim=params.model.z_dim,
        gen_width=params.model.gen_width,
        head_blocks=params.model.head_blocks,
        z_scale=params.model.z_scale,
        disc_width=params.model.disc_width,
        batch_size=t.batch_size,
        lr=t.lr,
        precision=t.precision,
    )
    coded = getattr(GENERATORS[kind], "has_codes", False)
    if coded:
        spec.num_codes, spec.tied_codes = params.model.num_codes, params.model.tied_codes
        spec.info_width, spec.info_weight = params.model.info_width, t.info_weight
    if kind == "ds_comgan":
        spec.head_factor = params.model.ds_head_factor
    device = pick_device(params.run.device)
    ckpt_path = run.path("checkpoints", f"{name}.pt")
    log_path = run.path("logs", f"{name}.jsonl")

    seed = params.run.seed * 1_000_003 + zlib.crc32(name.encode())
    torch.manual_seed(seed)
    G = _build_from_spec(spec.__dict__)
    D = ImageDiscriminator(spec.resolution, spec.disc_width)
    Q = build_code_classifiers(spec.__dict__) if coded else None
    G.to(device).train()
    D.to(device).train()
    ema = EMA(G, t.ema_decay)
    # Q_f and Q_b are optimised with G, as in the reference (they maximise the same L_info bound).
    g_params = list(G.parameters()) + (list(Q.parameters()) if Q is not None else [])
    if Q is not None:
        Q.to(device).train()
    opt_g = torch.optim.Adam(g_params, lr=t.lr, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    batches = torch.Generator().manual_seed(seed)

    start = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        diff = spec.differences(state["spec"])
        if diff:
            raise UserError(
                f"{ckpt_path} was trained with other settings ({'; '.join(diff)}); "
                "delete it or choose another run name"
            )
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        if Q is not None:
            Q.load_state_dict(state["Q"])
        ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_G"])
        opt_d.load_state_dict(state["opt_D"])
        torch.set_rng_state(state["rng_torch"])
        batches.set_state(state["rng_batches"])
        start = state["step"]
        _truncate_log(log_path, start)
    elif log_path.exists():
        log_path.unlink()  # a log without a checkpoint belongs to a run that never saved

    def save(step: int, path: Path = ckpt_path) -> None:
        save_torch_atomic(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "spec": spec.__dict__,
                "G": G.state_dict(),
                "D": D.state_dict(),
                "G_ema": ema.state_dict(),
                "Q": Q.state_dict() if Q is not None else None,
                "opt_G": opt_g.state_dict(),
                "opt_D": opt_d.state_dict(),
                "rng_torch": torch.get_rng_state(),
                "rng_batches": batches.get_state(),
            },
            path,
        )

    if bank is None and start < steps:
        bank = ImageBank.from_params(params)
    if bank is not None and bank.resolution != spec.resolution:
        raise ValueError(f"image bank is {bank.resolution}px, the run is {spec.resolution}px")

    groups = G.parameter_groups()
    bar = tqdm(total=steps, initial=start, desc=name, disable=not progress, leave=False)
    window_start, window_steps, t_begin = time.perf_counter(), 0, time.perf_counter()
    step = start
    with open(log_path, "a") as log:
        while step < steps:
            step += 1
            want_log = step % t.log_every == 0 or step == steps
            real = bank.sample(t.batch_size, batches).to(device)
            latents = G.sample_latents(t.batch_size, device=device)
            fakes = ("image", "trunk_image")  # the composite, and DS-ComGAN's x̄_z (Eq. 7)

            # D step: real → 1, every fake → 0.
            with _autocast(device, t.precision):
                out = G(**latents)
                real_logits = D(real).float()
                fake_logits = [D(out[k].detach()).float() for k in fakes if k in out]
            loss_d = d_loss(real_logits, *fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # G step: composite → 1, plus β·L_binary on the mask.
            if want_log and G.has_mask:
                out["mask"].retain_grad()
            with _autocast(device, t.precision):
                gen_logits = [D(out[k]).float() for k in fakes if k in out]
                if Q is not None:
                    code_logits = {c: Q[c].classify_code(out[c]).float() for c in ("fg", "bg")}
            loss_adv = sum(g_loss(logits) for logits in gen_logits)
            loss_bin = binary_loss(out["mask_logits"], beta) if G.has_mask else loss_adv * 0
            loss_info = loss_adv * 0
            if Q is not None:
                targets = {"fg": latents["f"], "bg": latents["b"]}
                loss_info = spec.info_weight * sum(
                    F.cross_entropy(code_logits[c], targets[c]) for c in ("fg", "bg")
                )
            loss_g = loss_adv + loss_bin + loss_info
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()

            if not (torch.isfinite(loss_d) and torch.isfinite(loss_g)):
                kept = f"step {start}" if ckpt_path.exists() else "none yet"
                raise TrainingDiverged(
                    f"{name}: non-finite loss at step {step} (loss_D {loss_d.item():.4g}, "
                    f"loss_G {loss_g.item():.4g}); last good checkpoint: {kept} ({ckpt_path}). "
                    "Try a lower train.lr or precision fp32."
                )
            record = None
            if want_log:
                record = {
                    "step": step,
                    "loss_d": loss_d.item(),
                    "loss_g": loss_g.item(),
                    "loss_adv": loss_adv.item(),
                    "loss_binary": loss_bin.item(),
                    "d_real": torch.sigmoid(real_logits).mean().item(),
                    "d_fake": torch.sigmoid(fake_logits[0]).mean().item(),
                }
                if Q is not None:
                    record["loss_info"] = loss_info.item()
                    for c, code in (("fg", "f"), ("bg", "b")):
                        hits = code_logits[c].argmax(1) == targets[c]
                        record[f"info_acc_{code}"] = hits.float().mean().item()
                for group, plist in groups.items():
                    record[f"grad_norm_{group}"] = _grad_norm(plist)
                if G.has_mask:
                    m = out["mask"]
                    record["mask_pixel_grad"] = (
                        float(m.grad.abs().mean()) if m.grad is not None else 0.0
                    )
                    record["mask_mean"] = m.detach().mean().item()
                    record["mask_entropy"] = float(
                        binary_entropy_from_logits(out["mask_logits"].detach().float()).mean()
                    )
                    record.update(trivial_solution_summary(m, out["fg"], out["bg"]))
            opt_g.step()
            ema.update(G, step - 1)
            window_steps += 1
            bar.update(1)

            if record is not None:
                now = time.perf_counter()
                record["sec_per_step"] = (now - window_start) / window_steps
                record["wall_s"] = now - t_begin
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
    records = read_log(run, name)
    timed = [r["sec_per_step"] for r in records if "sec_per_step" in r]
    return {
        "name": name,
        "kind": kind,
        "beta_binary": beta,
        "steps": step,
        "sec_per_step": sum(timed) / len(timed) if timed else None,
        "checkpoint": str(ckpt_path),
        "log": str(log_path),
        "last": records[-1] if records else None,
    }


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
