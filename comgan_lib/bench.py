"""Benchmark: training-step throughput of speed variants side by side, and the data pipeline.

Usage::

    python -m comgan_lib.bench params/synthetic.yaml
    python -m comgan_lib.bench params/cub.yaml --variants fp32 bf16 bf16+channels_last+compile
    python -m comgan_lib.bench params/synthetic.yaml --steps 5 --rounds 3 --set train.batch_size=64

It times the real steps (``comgan_lib.train.Stage1Step``: D step + G step, with Q for coded
kinds, Eq. 3/7/8/11; ``comgan_lib.stage2.Stage2Step``: D_m step + S step, Sec. 3.3, Eq. 9-10) of
the parameter file's networks at its resolution and batch size: stage 1 for ``model.kind`` and
``comgan``, stage 2 on an untrained generator (the step costs the same). A variant is
``+``-joined options of ``comgan_lib.speed``: ``fp32`` (the reference: fp32 eager), ``tf32``
(CUDA), ``bf16``, ``channels_last``, ``compile``, ``fused_adam``, ``cudnn_benchmark``; ``legacy``
is the stage-1 step as it was before this work (``make_legacy``).

Fairness on a noisy machine: every variant is built from the same seed and warmed up first (the
warm-up steps, which include compiling, are not timed); then ``--rounds`` rounds each time
``--steps`` steps of every variant in turn, and a variant's ratio to the reference is the median
of its per-round ratios (variants next to each other in time share the machine's load).

Wall time is what a run takes; on a machine shared with other work the process's CPU time per
step (``cpu_sec_per_step``, all its threads) is reported beside it, and its ratios are the steadier
ones there (with one thread, ``--threads 1``, CPU time is the work itself; with more, it also
counts threads waiting for each other).

Memory: CUDA ``max_memory_allocated`` per variant; on the CPU the process's resident set sampled
during the variant's timed steps (peak, and its rise over the variant's start: a rough figure,
the allocator keeps memory).

Data: the time to fill the in-memory ImageBank (for folder datasets through a DataLoader with
``data.num_workers``) and to sample a batch from it (indexing, flips, copy to the device), as
images per second beside the step's.

Writes ``outputs/bench/<params-stem>-<timestamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from comgan_lib import speed
from comgan_lib.config import PRECISIONS, Params, add_override_argument, load_params
from comgan_lib.errors import UserError
from comgan_lib.rundir import write_json_atomic
from comgan_lib.runtime import PROJECT_ROOT, device_description, git_commit, pick_device

OPTION_TOKENS = (*PRECISIONS, "channels_last", "compile", "fused_adam", "cudnn_benchmark")
REFERENCE = "fp32"


def parse_variant(name: str) -> tuple[speed.SpeedOptions, bool]:
    """``"bf16+channels_last"`` → (SpeedOptions, legacy); see ``make_legacy``."""
    options, legacy = speed.SpeedOptions(), False
    for token in name.split("+"):
        if token == "legacy":
            legacy = True
        elif token in PRECISIONS:
            options.precision = token
        elif token in OPTION_TOKENS:
            setattr(options, token, True)
        else:
            allowed = ", ".join(("legacy", *OPTION_TOKENS))
            raise UserError(f"unknown variant part {token!r} in {name!r}; parts: {allowed}")
    return options, legacy


def make_legacy(step_fn) -> None:
    """The stage-1 step as it was before the speed work (same math): D's weight gradients also
    computed in the G step, and GLU as two operations instead of ``F.glu``."""
    from comgan_lib.nets.blocks import GLU

    step_fn.freeze_d = False
    for module in step_fn.G.modules():
        if isinstance(module, GLU):
            module.fused = False


def default_variants(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return [
            "fp32",
            "legacy",
            "channels_last",
            "tf32",
            "tf32+channels_last",
            "bf16",
            "bf16+channels_last",
            "bf16+channels_last+compile+fused_adam+cudnn_benchmark",
        ]
    # bf16 autocast is ~25x slower on CPUs without native bf16: ask for it explicitly.
    return ["fp32", "legacy", "channels_last", "fused_adam", "compile", "compile+fused_adam"]


class RssSampler:
    """The process's resident set size, sampled every few milliseconds in a thread."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = None

    @staticmethod
    def now() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def __enter__(self):
        self.start_bytes = self.peak = self.now()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.now())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timed:
    """One variant of one stage: a callable running one step, and its timings."""

    def __init__(self, name: str, run_step, device: torch.device):
        self.name, self.run_step, self.device = name, run_step, device
        self.round_times: list[float] = []
        self.round_cpu: list[float] = []
        self.peak_bytes = 0
        self.rise_bytes = 0
        self.final_loss = None

    def warm_up(self, n: int) -> None:
        for _ in range(n):
            self.final_loss = self.run_step()
        _sync(self.device)

    def time_round(self, n: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        with RssSampler() as rss:
            _sync(self.device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                self.final_loss = self.run_step()
            _sync(self.device)
            self.round_times.append(time.perf_counter() - t0)
            self.round_cpu.append(time.process_time() - c0)
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_bytes = max(self.peak_bytes, peak)
            self.rise_bytes = max(self.rise_bytes, peak - base)
        else:
            self.peak_bytes = max(self.peak_bytes, rss.peak)
            self.rise_bytes = max(self.rise_bytes, rss.peak - rss.start_bytes)


def _interleave(variants: list[_Timed], rounds: int, steps: int, warmup: int, say) -> None:
    for v in variants:
        t0 = time.perf_counter()
        v.warm_up(warmup)
        v.warmup_s = time.perf_counter() - t0
        say(f"  warmed up {v.name} ({v.warmup_s:.1f} s)")
    for r in range(rounds):
        for v in variants:
            v.time_round(steps)
        say(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{v.name} {v.round_times[-1] / steps:.3f} s/step" for v in variants)
        )


def _summarise(variants: list[_Timed], batch: int, steps: int, reference: str) -> dict:
    ref = next((v for v in variants if v.name == reference), None)
    out = {}
    for v in variants:
        per_step = [t / steps for t in v.round_times]
        cpu_per_step = [t / steps for t in v.round_cpu]
        entry = {
            "img_per_s": batch / statistics.median(per_step),
            "sec_per_step": statistics.median(per_step),
            "sec_per_step_rounds": per_step,
            "cpu_sec_per_step": statistics.median(cpu_per_step),
            "img_per_cpu_s": batch / statistics.median(cpu_per_step),
            "warmup_s": round(v.warmup_s, 2),
            "peak_memory_mb": round(v.peak_bytes / 2**20, 1),
            "memory_rise_mb": round(v.rise_bytes / 2**20, 1),
            "final_loss": v.final_loss,
        }
        if ref is not None:
            ratios = [r / t for r, t in zip(ref.round_times, v.round_times, strict=True)]
            entry[f"ratio_vs_{reference}"] = statistics.median(ratios)
            entry[f"ratio_vs_{reference}_rounds"] = ratios
            cpu = [r / t for r, t in zip(ref.round_cpu, v.round_cpu, strict=True)]
            entry[f"cpu_ratio_vs_{reference}"] = statistics.median(cpu)
        out[v.name] = entry
    return out


def _bank(params: Params, load: bool, say) -> tuple[object, dict]:
    from comgan_lib.train import ImageBank

    info = {"source": "random images (--no-load)"}
    if load:
        try:
            t0 = time.perf_counter()
            bank = ImageBank.from_params(params)
            seconds = time.perf_counter() - t0
            info = {
                "source": f"data.kind {params.data.kind}",
                "images": len(bank),
                "load_s": round(seconds, 2),
                "load_img_per_s": len(bank) / seconds,
                "num_workers": params.data.num_workers,
            }
            say(f"  image bank: {len(bank)} images loaded in {seconds:.1f} s")
            return bank, info
        except UserError as e:
            info["source"] = f"random images ({e})"
    R = params.data.resolution
    torch.manual_seed(0)
    return ImageBank(torch.rand(512, 3, R, R) * 2 - 1, flip=params.train.flip), info


def _time_sampling(bank, batch: int, device: torch.device, n: int = 50) -> dict:
    from comgan_lib.train import to_device

    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        to_device(bank.sample(batch, g), device)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        to_device(bank.sample(batch, g), device)
    _sync(device)
    seconds = (time.perf_counter() - t0) / n
    return {"sec_per_batch": seconds, "img_per_s": batch / seconds}


def _stage1_variants(params, kind, names, bank, device) -> list[_Timed]:
    from comgan_lib.train import build_stage1, make_run_spec

    spec = make_run_spec(params, f"bench_{kind}", kind, params.train.beta_binary)
    B = params.train.batch_size
    out = []
    for name in names:
        options, legacy = parse_variant(name)
        step_fn = build_stage1(spec, params, device, options=options, seed=0)
        if legacy:
            make_legacy(step_fn)
        batches = torch.Generator().manual_seed(1)
        latents_rng = torch.Generator().manual_seed(2)
        counter = [0]

        def run_step(step_fn=step_fn, batches=batches, latents_rng=latents_rng, counter=counter):
            from comgan_lib.train import to_device

            counter[0] += 1
            real = to_device(bank.sample(B, batches), device)
            latents = step_fn.G.sample_latents(B, generator=latents_rng, device=device)
            r = step_fn.grads(real, latents)
            step_fn.update(counter[0])
            return float(r.loss_g.detach())

        out.append(_Timed(name, run_step, device))
    return out


def _stage2_variants(params, names, bank, device) -> list[_Timed]:
    from comgan_lib.stage2 import build_stage2, segmenter_spec
    from comgan_lib.train import _build_from_spec, make_run_spec, to_device

    s = params.segment
    gspec = make_run_spec(params, "bench_generator", params.model.kind, 1.0)
    spec = segmenter_spec(params, "bench_segmenter", "bench_generator", 0, "mask")
    out = []
    for name in names:
        options, _ = parse_variant(name)
        torch.manual_seed(0)
        G = _build_from_spec(gspec.__dict__).to(device).eval().requires_grad_(False)
        step_fn = build_stage2(G, spec, params, device, seed=0, options=options)
        batches = torch.Generator().manual_seed(1)

        def run_step(step_fn=step_fn, batches=batches):
            r = step_fn.grads(to_device(bank.sample(s.batch_size, batches), device))
            step_fn.update()
            return float(r.loss_s.detach())

        out.append(_Timed(name, run_step, device))
    return out


def run_bench(
    params: Params,
    variants: list[str] | None = None,
    steps: int = 3,
    warmup: int = 3,
    rounds: int = 3,
    kinds: list[str] | None = None,
    stage2: bool = True,
    load: bool = True,
    threads: int | None = None,
    say=print,
) -> dict:
    """Run the benchmark; returns the result dict that ``main`` writes as JSON."""
    if threads:
        torch.set_num_threads(threads)
    device = pick_device(params.run.device)
    variants = variants or default_variants(device)
    for v in variants:
        parse_variant(v)
    if REFERENCE not in variants:
        variants = [REFERENCE, *variants]
    kinds = kinds or list(dict.fromkeys([params.model.kind, "comgan"]))
    t = params.train
    result: dict = {
        "params": params.source,
        "machine": device_description(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git": git_commit(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "resolution": params.data.resolution,
        "batch_size": {"stage1": t.batch_size, "stage2": params.segment.batch_size},
        "steps_per_round": steps,
        "warmup_steps": warmup,
        "rounds": rounds,
        "variants": variants,
        "reference": REFERENCE,
        "compile_unavailable": speed.compile_unavailable(device),
    }
    say(f"benchmark on {result['machine']}, {params.data.resolution} px")
    bank, data = _bank(params, load, say)
    data["sample_stage1"] = _time_sampling(bank, t.batch_size, device)
    result["data"] = data

    result["stage1"] = {}
    for kind in kinds:
        say(f"stage 1, {kind}, batch {t.batch_size}:")
        timed = _stage1_variants(params, kind, variants, bank, device)
        _interleave(timed, rounds, steps, warmup, say)
        result["stage1"][kind] = _summarise(timed, t.batch_size, steps, REFERENCE)
        del timed
    if stage2:
        names = [v for v in variants if "legacy" not in v.split("+")]
        say(f"stage 2, batch {params.segment.batch_size}:")
        timed = _stage2_variants(params, names, bank, device)
        _interleave(timed, rounds, steps, warmup, say)
        result["stage2"] = _summarise(timed, params.segment.batch_size, steps, REFERENCE)
    fastest = max(result["stage1"][kinds[0]].values(), key=lambda e: e["img_per_s"])
    data["sample_vs_step"] = data["sample_stage1"]["img_per_s"] / fastest["img_per_s"]
    result["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return result


def format_table(result: dict) -> str:
    lines = [
        f"{'stage':<20} {'variant':<36} {'img/s':>8} {'s/step':>7} {'× fp32':>6} "
        f"{'cpu s/step':>10} {'× fp32':>6} {'mem MB':>7}"
    ]
    nan = float("nan")

    def rows(stage, table):
        for name, e in table.items():
            ratio = e.get(f"ratio_vs_{REFERENCE}", nan)
            cpu_ratio = e.get(f"cpu_ratio_vs_{REFERENCE}", nan)
            lines.append(
                f"{stage:<20} {name:<36} {e['img_per_s']:8.1f} {e['sec_per_step']:7.3f} "
                f"{ratio:6.2f} {e['cpu_sec_per_step']:10.3f} {cpu_ratio:6.2f} "
                f"{e['peak_memory_mb']:7.0f}"
            )

    for kind, table in result["stage1"].items():
        rows(f"stage 1 {kind}", table)
    if "stage2" in result:
        rows("stage 2", result["stage2"])
    d = result["data"]
    s = d["sample_stage1"]
    lines.append(
        f"data: sampling a batch {s['img_per_s']:.0f} img/s "
        f"({d['sample_vs_step']:.0f}x the fastest stage-1 step)"
        + (f"; bank filled at {d['load_img_per_s']:.0f} img/s" if "load_img_per_s" in d else "")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comgan_lib.bench",
        description="Time training steps of speed variants side by side, and the data pipeline.",
    )
    parser.add_argument("params", help="parameter file, e.g. params/synthetic.yaml")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compiling)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all variants")
    parser.add_argument(
        "--variants",
        nargs="+",
        help=f"'+'-joined parts of: legacy {' '.join(OPTION_TOKENS)} (fp32 is always included)",
    )
    parser.add_argument("--kinds", nargs="+", help="stage-1 generators (default model.kind comgan)")
    parser.add_argument("--no-stage2", action="store_true", help="skip stage 2")
    parser.add_argument("--no-load", action="store_true", help="random images, no dataset")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, help="output folder (default outputs/bench)")
    add_override_argument(parser)
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params, args.overrides)
        result = run_bench(
            params,
            variants=args.variants,
            steps=args.steps,
            warmup=args.warmup,
            rounds=args.rounds,
            kinds=args.kinds,
            stage2=not args.no_stage2,
            load=not args.no_load,
            threads=args.threads,
            say=lambda m: print(m, flush=True),
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["command"] = " ".join(["python -m comgan_lib.bench", *(argv or sys.argv[1:])])
    out_dir = args.out or PROJECT_ROOT / "outputs" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"{Path(args.params).stem}-{stamp}.json"
    write_json_atomic(path, result)
    print(format_table(result))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
